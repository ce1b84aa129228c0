"""Who may reach a private app through the gateway, and share links turned into cookies (both link forms, HTTP
and WebSocket alike: a private space is a 404 to everyone else, never a 403 that would confirm it exists)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Scope

from spaces_runtime.auth.authenticate import Credentials
from spaces_runtime.auth.shares import SHARE_PARAM, cookie_name
from spaces_runtime.gateway import pages
from spaces_runtime.gateway.routes import Route


def credentials_of(scope: Scope) -> Credentials:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in (b"authorization",
                                                                                               b"cookie")}
    return Credentials(authorization=headers.get("authorization"),
                       cookies=cookie_parser(headers.get("cookie", "")), method=scope.get("method", "GET"))


def share_token(scope: Scope) -> str | None:
    """The share link's token when this request is a share link being opened."""
    if scope["type"] != "http":
        return None
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    return query.get(SHARE_PARAM)


def share_answer(scope: Scope, route: Route, problem: str | None) -> Response:
    """A good link becomes a cookie scoped to this one app, and the same address without the token; a bad one
    gets a page that says why."""
    space = f"{route.owner}/{route.name}"
    if problem:
        return HTMLResponse(pages.share_problem_page(space, problem), 403, headers={"Cache-Control": "no-store"})
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != SHARE_PARAM]
    path = scope.get("raw_path", b"").decode("latin-1").split("?")[0] or scope["path"]
    answer = RedirectResponse(path + (f"?{urlencode(query)}" if query else ""), 303,
                              headers={"Cache-Control": "no-store"})
    token = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))[SHARE_PARAM]
    answer.set_cookie(cookie_name(space), token, path="/" if route.via_host else f"{route.prefix}/",
                      httponly=True, samesite="lax", secure=scope.get("scheme") == "https")
    return answer
