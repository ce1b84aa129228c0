"""Who may reach a private app through the gateway, and share links turned into cookies (both link forms, HTTP
and WebSocket alike: a private space is a 404 to everyone else, never a 403 that would confirm it exists).

Where browsers run an app's pages. On the path form (``/spaces/o/n/``) an app's script would run on the
platform's own origin: it could read a signed-in visitor's pages (their CSRF token) and act as them. So when host
links resolve (``AppOrigins.host_links``), every app has an origin of its own: a browser's navigation to a path
link is redirected to the host form, anything else on the path form (gradio_client, curl, the Hub's clients) is
answered as before but can never become a page there (``sandbox``), and a private app is opened for a member by
a pass (auth/passes.py) that becomes a cookie of the app's host only; the platform's session never goes there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Scope

from spaces_runtime.auth.accounts import TOKEN_PREFIX
from spaces_runtime.auth.authenticate import SECURE_SESSION_COOKIE, SESSION_COOKIE, Credentials
from spaces_runtime.auth.passes import PASS_COOKIE_S, PASS_PARAM, pass_cookie_name
from spaces_runtime.auth.shares import SHARE_PARAM, cookie_name
from spaces_runtime.gateway import pages
from spaces_runtime.gateway.routes import Route
from spaces_runtime.gateway.targets import ResponseHeaders, StaticSite, Target, Upstream

HF_AUTH = b"x-hf-authorization"  # gradio_client.Client(hf_token=...) sends its token here, as Spaces' proxy reads it


def credentials_of(scope: Scope) -> Credentials:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in (b"authorization",
                                                                                               b"cookie", HF_AUTH)}
    # method GET: the gateway asks only whether the caller may see the app. An app's own POSTs (Gradio's queue)
    # never carry the platform's CSRF token, and no write to the platform passes through here.
    return Credentials(authorization=headers.get("authorization") or headers.get(HF_AUTH.decode()),
                       cookies=cookie_parser(headers.get("cookie", "")), method="GET", secure=_scheme(scope) == "https")


def for_the_app(scope: Scope) -> Scope:
    """The request as the app gets it: without the platform's session and share cookies, nor a platform token in
    Authorization or X-HF-Authorization (gradio_client's header). Each is a credential for the whole platform: an
    app that saw one could act as its visitor everywhere. An app's own Authorization scheme passes untouched."""
    def platform_cookie(part: bytes) -> bool:
        name = part.split(b"=", 1)[0].strip()
        return name in (SESSION_COOKIE.encode(), SECURE_SESSION_COOKIE.encode()) or name.startswith(
            (b"spaces_share_", b"spaces_pass_", b"__Host-spaces_pass_"))

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


# --- an origin per app ---------------------------------------------------------------------------------------
# What a browser renders as a page (its script runs on the answer's origin). Fetch metadata says so in every
# current browser; without it (an old browser, or a script) only a request that accepts HTML and carries no token
# is taken for one, so gradio_client, curl and the Hub's clients (Accept */*, a bearer token) are never redirected.
PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame", "object", "embed", "fencedframe"})
# the path form's answers, when apps have origins of their own: a page of them there runs no script at all
PATH_FORM_POLICY = ("content-security-policy", "sandbox")
LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]"})


class PassBroker(Protocol):
    def exchange_pass(self, token: str, space_id: str) -> tuple[str | None, str]: ...


@dataclass(frozen=True)
class AppOrigins:
    """``host_links``: browsers resolve ``owner-name.public_host``. ``platform_origins``: where the platform's own
    pages are served (they may frame an app that disabled embedding). ``passes``: exchanges member passes."""

    host_links: bool = False
    public_host: str = ""
    platform_origins: tuple[str, ...] = ()
    passes: PassBroker | None = None

    def apply_to(self, scope: Scope) -> bool:
        """Whether this request's browser reaches apps by host links: it asked for the platform by its public
        host (a visitor who typed another address for it, say the machine's IP while the public host is
        localhost, would not resolve them; the platform answers them as before, on its own origin)."""
        return self.host_links and on_public_host(Headers(scope=scope).get("host", ""), self.public_host)

    def host_link(self, scope: Scope, owner: str, name: str, rest: str) -> str:
        return f"{_scheme(scope)}://{owner}-{name}.{self.public_host}{rest}" + _query(scope)

    def opener(self, scope: Scope, route: Route) -> str:
        """The platform's page that gives a signed-in member a pass to this app and sends them back."""
        path = route.rest + _query(scope)
        return f"{_scheme(scope)}://{self.public_host}/_platform/open/{route.owner}/{route.name}?" + \
            urlencode({"next": path})


def app_origins(host_links: bool, public_host: str, port: int, passes: PassBroker | None) -> AppOrigins:
    """The public host and the loopback addresses of this port: the platform's pages are served on each."""
    hosts = dict.fromkeys([public_host, f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"])
    origins = tuple(f"{scheme}://{host}" for host in hosts for scheme in ("http", "https"))
    return AppOrigins(host_links, public_host, origins, passes)


def on_public_host(host: str, public_host: str) -> bool:
    """``host`` names the public host (ports aside); loopback addresses count as ``localhost``, which every
    browser on this machine resolves, subdomains included."""
    def hostname(value: str) -> str:
        value = value.strip().lower()
        return value.split("]")[0] + "]" if value.startswith("[") else value.rsplit(":", 1)[0]

    mine, public = hostname(host), hostname(public_host)
    return mine == public or (public == "localhost" and mine in LOOPBACK)


def is_page_visit(scope: Scope) -> bool:
    if scope["type"] != "http":
        return False
    headers = Headers(scope=scope)
    mode, destination = headers.get("sec-fetch-mode"), headers.get("sec-fetch-dest")
    if mode is not None or destination is not None:
        return mode == "navigate" or destination in PAGE_DESTINATIONS
    if "authorization" in headers or "x-hf-authorization" in headers:
        return False
    return "text/html" in headers.get("accept", "")


def is_top_level_visit(scope: Scope) -> bool:
    """A page visit in a tab of its own, not a frame: only such a visit is sent to the platform for a pass (a
    frame got its pass from the app page; one whose cookie a browser refused would come back for ever)."""
    return is_page_visit(scope) and Headers(scope=scope).get("sec-fetch-dest", "document") == "document"


def as_served(target: Target, route: Route, origins: AppOrigins, own_origins: bool) -> Target:
    """The target with the platform's headers for where it is served: ``frame-ancestors`` (disable_embedding)
    names the platform's origins besides the app's own, since the app page frames the host form; on the path form,
    when apps have origins of their own (``own_origins``: ``AppOrigins.apply_to`` the request), the sandbox
    policy."""
    if not isinstance(target, Upstream | StaticSite):
        return target
    headers = target.headers
    add = tuple((name, f"{value} {' '.join(origins.platform_origins)}".strip())
                if name == "content-security-policy" and value.startswith("frame-ancestors") else (name, value)
                for name, value in headers.add)
    if own_origins and not route.via_host:
        add += (PATH_FORM_POLICY,)
    if add == headers.add:
        return target
    return replace(target, headers=ResponseHeaders(replace=headers.replace, add=add))


def pass_token(scope: Scope) -> str | None:
    if scope["type"] != "http":
        return None
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get(PASS_PARAM)


def pass_answer(scope: Scope, route: Route, broker: PassBroker) -> Response:
    """A good pass becomes a cookie of this app's host and the same address without it; a bad one a page."""
    space = f"{route.owner}/{route.name}"
    cookie, problem = broker.exchange_pass(pass_token(scope) or "", space)
    if cookie is None:
        return HTMLResponse(pages.share_problem_page(space, problem), 403, headers={"Cache-Control": "no-store"})
    answer = RedirectResponse(_without(scope, PASS_PARAM), 303, headers={"Cache-Control": "no-store"})
    name = pass_cookie_name(space, secure=_scheme(scope) == "https")
    answer.raw_headers.append((b"set-cookie", app_cookie(scope, name, cookie).encode()))
    return answer


def app_cookie(scope: Scope, name: str, value: str) -> str:
    """A cookie of the app's host only (no Domain), kept from the app's script (HttpOnly) and its server (the
    gateway strips it). The app page frames that host from another site: a frame's cookies are third-party, which
    Chromium keeps only when partitioned by the top-level site (CHIPS: SameSite=None; Secure; Partitioned). Secure
    needs HTTPS or localhost; over plain HTTP elsewhere the app's host must be a subdomain of the platform's (the
    same site), where SameSite=Lax is sent in the frame. Over HTTPS the name has the ``__Host-`` prefix
    (``pass_cookie_name``): Secure, Path=/ and no Domain, as the prefix demands."""
    host = Headers(scope=scope).get("host", "").rsplit(":", 1)[0].lower()
    cross_site = _scheme(scope) == "https" or host == "localhost" or host.endswith(".localhost")
    attributes = "SameSite=None; Secure; Partitioned" if cross_site else "SameSite=Lax"
    return f"{name}={value}; Path=/; Max-Age={PASS_COOKIE_S}; HttpOnly; {attributes}"


def _scheme(scope: Scope) -> str:
    scheme = str(scope.get("scheme", "http"))
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def _query(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return f"?{query}" if query else ""


def _without(scope: Scope, param: str) -> str:
    query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != param]
    path = scope.get("raw_path", b"").decode("latin-1").split("?")[0] or quote(scope["path"])
    return path + (f"?{urlencode(query)}" if query else "")
