"""The gateway: an ASGI app in front of the platform's own app that sends app links to the apps.

Requests for ``/spaces/{owner}/{name}/…`` or ``{owner}-{name}.{public_host}`` are proxied (HTTP with streamed
bodies both ways, so uploads and SSE pass unbuffered; WebSocket frame by frame), served from disk (static apps),
or answered with a page that says why the app cannot answer. Everything else goes to the wrapped app.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spaces_runtime.gateway import affinity, pages
from spaces_runtime.gateway.access import (
    AppOrigins,
    as_served,
    credentials_of,
    for_the_app,
    is_page_visit,
    is_top_level_visit,
    pass_answer,
    pass_token,
    share_answer,
    share_token,
)
from spaces_runtime.gateway.routes import Route, resolve, split_subdomain
from spaces_runtime.gateway.targets import (
    Failed,
    Missing,
    Pending,
    ResponseHeaders,
    StaticSite,
    Target,
    TargetSource,
    Upstream,
)
from spaces_runtime.gateway.upstream import Headers as RawHeaders
from spaces_runtime.gateway.upstream import UpstreamError, UpstreamPool, UpstreamResponse
from spaces_runtime.gateway.websocket import proxy_websocket
from spaces_runtime.hub.git import git_request_of
from spaces_runtime.hub.shapes import is_file_download

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
HOP_BY_HOP_BYTES = frozenset(h.encode() for h in HOP_BY_HOP)
# uvicorn already answered the browser's Expect: 100-continue; the framing header is written by the client
_DROPPED_REQUEST = HOP_BY_HOP_BYTES | {b"expect", b"content-length"}
# How long an app's address is remembered: well under a replaced version's 2 s retirement, so a request sent to
# the old version after a swap is still answered (by it), at most this long.
UPSTREAM_TTL_S = 0.5
WAKE_WAIT_S = 120.0  # how long an API client (not a browser) is held while its app wakes up
BROWSER_HOLD_S = 3.0  # how long a browser is held before it gets the page that reloads until the app is up


class ClientDisconnected(Exception):
    """The browser went away before it sent all of its request body."""


class Gateway:
    def __init__(self, app: ASGIApp, targets: TargetSource, public_host: str,
                 origins: AppOrigins | None = None) -> None:
        self.app = app
        self.targets = targets
        self.public_host = public_host
        self.origins = origins or AppOrigins(public_host=public_host)
        self._pool = UpstreamPool()
        self._upstreams: dict[tuple[str, str], tuple[float, Upstream]] = {}
        self._waking: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._static: dict[Path, StaticFiles] = {}

    def forget(self, owner: str, name: str) -> None:
        """Ask the platform about owner/name on the next request (call on every stage change)."""
        self._upstreams.pop((owner, name), None)

    async def aclose(self) -> None:
        for task in self._waking.values():
            task.cancel()
        self._pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] in ("http", "websocket") else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if self.origins.apply_to(scope) and not route.via_host and is_page_visit(scope) and await self._own_host(route):
            # a page of the app must not run on the platform's origin: send the browser to the app's own
            await self._redirect(scope, receive, send, self.origins.host_link(scope, route.owner, route.name,
                                                                                   route.rest))
            return
        if route.redirect is not None:
            await self._redirect(scope, receive, send, route.redirect)
            return
        if not await self._dispatch(scope, receive, send, route, cached=True):
            # the remembered address stopped answering (stopped, replaced, asleep): ask the platform again
            await self._dispatch(scope, receive, send, route, cached=False)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, route: Route, cached: bool) -> bool:
        """Answer the request; False when a remembered upstream refused the connection before anything was sent."""
        route, target = await self._target(route, cached)
        if route.via_host and self.origins.passes and not isinstance(target, Missing) and pass_token(scope):
            await pass_answer(scope, route, self.origins.passes)(scope, receive, send)
            return True
        if not isinstance(target, Missing) and (token := share_token(scope)) is not None:
            problem = self.targets.share_problem(route.owner, route.name, token)
            await share_answer(scope, route, problem)(scope, receive, send)
            return True
        if not isinstance(target, Missing) and not self.targets.admits(route.owner, route.name,
                                                                       credentials_of(scope)):
            target = Missing()  # private: to everyone else it does not exist
        if isinstance(target, Missing) and route.via_host and self.origins.passes and is_top_level_visit(scope):
            # the platform's session never comes here: a member gets a pass there (a stranger a 404 there)
            await self._redirect(scope, receive, send, self.origins.opener(scope, route), query=False)
            return True
        target = as_served(target, route, self.origins, self.origins.apply_to(scope))
        if isinstance(target, Pending) and (target.stage == "SLEEPING" or self._waking_up(route)):
            route, target = await self._wake(scope, route, target)
        if isinstance(target, Upstream):
            self.targets.touch(route.owner, route.name)
            return await self._proxy(for_the_app(scope), receive, send, route, target, retry=cached)
        if isinstance(target, StaticSite) and scope["type"] == "http":
            self.targets.touch(route.owner, route.name)
            await self._serve_static(scope, receive, _with_headers(send, target.headers), route, target.root)
        else:
            await _refuse(scope, receive, send, route, target)
        return True

    # --- routing -----------------------------------------------------------------------------------------
    def _route(self, scope: Scope) -> Route | None:
        if git_request_of(scope) is not None:  # git's requests on an app's link: hub/githttp.py answers them
            return None
        if is_file_download(scope):  # the Hub's file downloads on the path form: hub/api_files.py
            return None
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]
        return resolve(host, path, self.public_host)

    async def _target(self, route: Route, cached: bool = False) -> tuple[Route, Target]:
        """The host form's candidates in order; the first that exists wins (see routes.py).

        An app's upstream address is remembered for UPSTREAM_TTL_S: asking the platform reads SQLite, which
        would otherwise cost more than relaying a small request. Only addresses are remembered; every other
        answer (starting, failed, asleep) is asked afresh, and a remembered address that refuses a connection
        is forgotten at once (see __call__), so a stopped app shows its page, not a 502.
        """
        first: Target | None = None
        now = time.monotonic()
        for owner, name in route.candidates or ((route.owner, route.name),):
            remembered = self._upstreams.get((owner, name)) if cached else None
            if remembered is not None and now - remembered[0] < UPSTREAM_TTL_S:
                return route.with_app(owner, name), remembered[1]
            target = await self.targets.target(owner, name)
            if isinstance(target, Upstream):
                self._upstreams[(owner, name)] = (now, target)
            else:
                self._upstreams.pop((owner, name), None)
            if not isinstance(target, Missing):
                return route.with_app(owner, name), target
            first = first or target
        return route, first or Missing()

    def _waking_up(self, route: Route) -> bool:
        task = self._waking.get((route.owner, route.name))
        return task is not None and not task.done()

    async def _wake(self, scope: Scope, route: Route, target: Pending) -> tuple[Route, Target]:
        """Start the app; a browser gets the reloading page at once, an API client waits for the app."""
        key = (route.owner, route.name)
        task = self._waking.get(key)
        if task is None or task.done():
            task = self._waking[key] = asyncio.create_task(self.targets.wake(*key))
            task.add_done_callback(_swallow)
        if scope["type"] == "http" and "text/html" in Headers(scope=scope).get("accept", ""):
            # a wake from a zygote takes about a second: a browser held that long gets the app, not the page
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), BROWSER_HOLD_S)
            if not task.done():
                return route, Pending("SLEEPING", target.title, "Waking the app up.")
            return route, await self.targets.target(*key)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), WAKE_WAIT_S)
        return route, await self.targets.target(*key)

    async def _own_host(self, route: Route) -> bool:
        """Whether owner-name.host means this app: an earlier reading of the label (routes.py) that exists
        would take it, and the app then stays on the path form."""
        for owner, name in split_subdomain(f"{route.owner}-{route.name}"):
            if (owner, name) == (route.owner, route.name):
                return True
            if not isinstance(await self.targets.target(owner, name), Missing):
                return False
        return False

    async def _redirect(self, scope: Scope, receive: Receive, send: Send, location: str,
                        query: bool = True) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if query and "?" not in location and (string := scope.get("query_string", b"").decode("latin-1")):
            location += f"?{string}"
        await RedirectResponse(location, 307)(scope, receive, send)

    # --- HTTP --------------------------------------------------------------------------------------------
    async def _proxy(self, scope: Scope, receive: Receive, send: Send, route: Route, upstream: Upstream,
                     retry: bool) -> bool:
        query = scope.get("query_string", b"")
        path = route.upstream_path(upstream.forward_prefix)
        forwarded = _forwarded_headers(scope, route)
        upstream, pin = affinity.pick(upstream, scope, route)  # several tasks (swarm): this visitor's
        heard = lambda: self.targets.heard_from(route.owner, route.name)  # noqa: E731
        if scope["type"] == "websocket":
            ws_url = "ws" + upstream.url.rstrip("/").removeprefix("http") + path + (
                f"?{query.decode('latin-1')}" if query else "")
            touch = lambda: self.targets.touch(route.owner, route.name)  # noqa: E731
            await proxy_websocket(scope, receive, send, ws_url, forwarded, touch, heard)
            return True
        headers, body_framing = _request_headers(scope, forwarded)
        target = path.encode("latin-1") + (b"?" + query if query else b"")
        host, port = _address(upstream.url)
        try:
            response = await self._pool.request(
                host, port, scope["method"], target, headers,
                _request_body(receive) if body_framing else None, chunked=body_framing == b"transfer-encoding")
        except ClientDisconnected:
            return True  # the pool closed the app's connection, which ends its request; nobody is left to answer
        except UpstreamError as exc:
            if exc.before_sending and (rest := affinity.without_first(upstream)) is not None:
                return await self._proxy(scope, receive, send, route, rest, retry)  # another task may answer
            if retry and exc.before_sending:
                self._upstreams.pop((route.owner, route.name), None)
                return False
            page = pages.upstream_error_page(f"{route.owner}/{route.name}", str(exc))
            await HTMLResponse(page, 502)(scope, receive, send)
            return True
        heard()
        try:
            headers = upstream.headers.apply(_response_headers(response.headers, upstream.url))
            if pin is not None:
                headers.append(pin)
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            if response.has_length or scope["method"] == "HEAD":
                await _relay_body(response, send)
            else:  # a stream (SSE, chunked): stop reading the app when the browser goes away
                await _relay_until_disconnect(response, send, receive, heard)
        finally:
            response.close()
        return True

    # --- static sites --------------------------------------------------------------------------------------
    async def _serve_static(self, scope: Scope, receive: Receive, send: Send, route: Route, root: Path) -> None:
        files = self._static.get(root)
        if files is None:
            files = self._static[root] = StaticFiles(directory=root, html=True, check_dir=False)
        prefix = "" if route.via_host else route.prefix
        # routes come from the raw path; file names are decoded exactly once (as uvicorn decodes scope["path"]),
        # so "my%20file.html" finds "my file.html" while "%252e%252e" stays the literal name "%2e%2e". StaticFiles
        # then normalises the decoded path and refuses anything that resolves outside root ("..%2F" included).
        rest = unquote(route.rest)
        if "\x00" in rest:  # no file name holds a NUL; os calls would raise on it
            await HTMLResponse(pages.missing_page(f"{route.owner}/{route.name}{route.rest}"), 404)(
                scope, receive, send)
            return
        inner = {**scope, "path": prefix + rest, "root_path": prefix}
        try:
            await files(inner, receive, send)
        except Exception as exc:  # StaticFiles raises HTTPException for 404/405 outside a Starlette app
            status = getattr(exc, "status_code", 500)
            body = pages.missing_page(f"{route.owner}/{route.name}{route.rest}") if status == 404 else str(exc)
            await HTMLResponse(body, status)(scope, receive, send)


def _with_headers(send: Send, headers: ResponseHeaders) -> Send:
    """``send`` with the app's response headers (README custom_headers, disable_embedding) applied."""
    if not headers:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": headers.apply(list(message.get("headers", [])))}
        await send(message)
    return sending


def _swallow(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # a failed wake shows as the app's stage; retrieve it so asyncio does not warn


def _forwarded_headers(scope: Scope, route: Route) -> list[tuple[str, str]]:
    incoming = Headers(scope=scope)
    client = scope.get("client")
    chain = ", ".join(x for x in (incoming.get("x-forwarded-for"), client[0] if client else None) if x)
    scheme = str(scope.get("scheme", "http"))
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    headers: list[tuple[str, str]] = [("x-forwarded-host", incoming.get("host") or ""),
                                      ("x-forwarded-proto", scheme)]
    if chain:
        headers.append(("x-forwarded-for", chain))
    if not route.via_host:
        headers.append(("x-forwarded-prefix", route.prefix))
    return headers


def _request_headers(scope: Scope, forwarded: list[tuple[str, str]]) -> tuple[RawHeaders, bytes | None]:
    """The browser's headers for the app, and how its body is framed (b"content-length", b"transfer-encoding"
    or None for no body); the framing header itself is left to the upstream client."""
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    dropped = _DROPPED_REQUEST | {name.encode("latin-1") for name, _ in forwarded}
    for key, value in raw:
        if key == b"connection":
            dropped |= _connection_tokens(value)
    out = [(k, v) for k, v in raw if k not in dropped]
    out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in forwarded]
    framing = next((k for k, _ in raw if k in (b"content-length", b"transfer-encoding")), None)
    if framing == b"content-length":
        out.append((b"content-length", next(v for k, v in raw if k == b"content-length")))
    return out, framing


def _response_headers(headers: RawHeaders, upstream_url: str) -> RawHeaders:
    dropped = HOP_BY_HOP_BYTES
    for key, value in headers:
        if key == b"connection":
            dropped = dropped | _connection_tokens(value)
    base = upstream_url.rstrip("/").encode("latin-1")
    out = []
    for key, value in headers:
        if key in dropped:
            continue
        if key == b"location" and value.startswith(base):  # the app's own address means "this host"
            value = value[len(base):] or b"/"
        out.append((key, value))
    return out


def _connection_tokens(value: bytes) -> frozenset[bytes]:
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # ending the body here would leave the app waiting for the rest of its Content-Length: abort instead
            raise ClientDisconnected
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _relay_body(response: UpstreamResponse, send: Send, heard: Callable[[], None] | None = None) -> None:
    async for chunk in response.body():
        if heard is not None:  # a stream's every chunk shows the app at work (see LivenessPolicy)
            heard()
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _relay_until_disconnect(response: UpstreamResponse, send: Send, receive: Receive,
                                  heard: Callable[[], None]) -> None:
    async def disconnected() -> None:
        message: Message = {}
        while message.get("type") != "http.disconnect":
            message = await receive()

    relay = asyncio.create_task(_relay_body(response, send, heard))
    watch = asyncio.create_task(disconnected())
    done, pending = await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if relay in done and not relay.cancelled():
        with contextlib.suppress(OSError, RuntimeError):  # a browser that left mid-stream is not an error
            relay.result()


async def _refuse(scope: Scope, receive: Receive, send: Send, route: Route, target: Target) -> None:
    """Answer for an app that cannot: a reloading page, an error page, or a 404 (WebSockets get a close code)."""
    space = f"{route.owner}/{route.name}"
    if scope["type"] == "websocket":
        code = 1013 if isinstance(target, Pending) else 1011 if isinstance(target, Failed) else 4404
        await send({"type": "websocket.close", "code": code})
        return
    response: Response
    if isinstance(target, Pending):
        response = HTMLResponse(pages.pending_page(space, target.stage, target.title, target.detail), 503,
                                headers={"Retry-After": str(pages.REFRESH_S), "Cache-Control": "no-store"})
    elif isinstance(target, Failed):
        response = HTMLResponse(pages.failed_page(space, target.stage, target.error), 502,
                                headers={"Cache-Control": "no-store"})
    else:
        response = HTMLResponse(pages.missing_page(space), 404)
    await response(scope, receive, send)
