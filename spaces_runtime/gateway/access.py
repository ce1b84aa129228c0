"""Who may reach a private app through the gateway, and share links turned into cookies (both link forms, HTTP
and WebSocket alike: a private space is a 404 to everyone else, never a 403 that would confirm it exists)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Scope

from spaces_runtime.auth.accounts import TOKEN_PREFIX
from spaces_runtime.auth.authenticate import SESSION_COOKIE, Credentials
from spaces_runtime.auth.shares import SHARE_PARAM, cookie_name
from spaces_runtime.gateway import pages
from spaces_runtime.gateway.routes import Route

HF_AUTH = b"x-hf-authorization"  # gradio_client.Client(hf_token=...) sends its token here, as Spaces' proxy reads it


def credentials_of(scope: Scope) -> Credentials:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in (b"authorization",
                                                                                               b"cookie", HF_AUTH)}
    # method GET: the gateway asks only whether the caller may see the app. An app's own POSTs (Gradio's queue)
    # never carry the platform's CSRF token, and no write to the platform passes through here.
    return Credentials(authorization=headers.get("authorization") or headers.get(HF_AUTH.decode()),
                       cookies=cookie_parser(headers.get("cookie", "")), method="GET")


def for_the_app(scope: Scope) -> Scope:
    """The request as the app gets it: without the platform's session and share cookies, nor a platform token in
    Authorization or X-HF-Authorization (gradio_client's header). Each is a credential for the whole platform: an
    app that saw one could act as its visitor everywhere. An app's own Authorization scheme passes untouched."""
    def platform_cookie(part: bytes) -> bool:
        name = part.split(b"=", 1)[0].strip()
        return name == SESSION_COOKIE.encode() or name.startswith(b"spaces_share_")

    headers = []
    for key, value in scope["headers"]:
        if key in (b"authorization", b"x-hf-authorization") and _is_platform_token(value):
            continue
        if key == b"cookie":
            value = b";".join(p for p in value.split(b";") if p.strip() and not platform_cookie(p)).strip()
            if not value:
                continue
        headers.append((key, value))
    return {**scope, "headers": headers}


def _is_platform_token(value: bytes) -> bool:
    scheme, _, secret = value.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and secret.strip().startswith(TOKEN_PREFIX)


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
