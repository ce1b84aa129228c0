"""The gateway: an ASGI app in front of the platform's own app that sends app links to the apps.

Requests for ``/spaces/{owner}/{name}/…`` or ``{owner}-{name}.{public_host}`` are proxied (HTTP with streamed
bodies both ways, so uploads and SSE pass unbuffered; WebSocket frame by frame), served from disk (static apps),
or answered with a page that says why the app cannot answer. Everything else goes to the wrapped app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spaces_runtime.gateway import pages
from spaces_runtime.gateway.routes import Route, resolve
from spaces_runtime.gateway.targets import Failed, Missing, Pending, StaticSite, Target, TargetSource, Upstream
from spaces_runtime.gateway.websocket import proxy_websocket

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
WAKE_WAIT_S = 120.0  # how long an API client (not a browser) is held while its app wakes up
_TIMEOUT = httpx.Timeout(connect=10.0, read=None, write=None, pool=None)  # streams may idle for long


class Gateway:
    def __init__(self, app: ASGIApp, targets: TargetSource, public_host: str) -> None:
        self.app = app
        self.targets = targets
        self.public_host = public_host
        self._client: httpx.AsyncClient | None = None
        self._waking: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._static: dict[Path, StaticFiles] = {}

    async def aclose(self) -> None:
        for task in self._waking.values():
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] in ("http", "websocket") else None
        if route is None:
            await self.app(scope, receive, send)
            return
        if route.redirect is not None:
            await self._redirect(scope, receive, send, route.redirect)
            return
        route, target = await self._target(route)
        if isinstance(target, Pending) and (target.stage == "SLEEPING" or self._waking_up(route)):
            route, target = await self._wake(scope, route, target)
        if isinstance(target, Upstream):
            self.targets.touch(route.owner, route.name)
            await self._proxy(scope, receive, send, route, target)
        elif isinstance(target, StaticSite) and scope["type"] == "http":
            self.targets.touch(route.owner, route.name)
            await self._serve_static(scope, receive, send, route, target.root)
        else:
            await _refuse(scope, receive, send, route, target)

    # --- routing -----------------------------------------------------------------------------------------
    def _route(self, scope: Scope) -> Route | None:
        host = Headers(scope=scope).get("host", "")
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]
        return resolve(host, path, self.public_host)

    async def _target(self, route: Route) -> tuple[Route, Target]:
        """The host form's candidates in order; the first that exists wins (see routes.py)."""
        first: Target | None = None
        for owner, name in route.candidates or ((route.owner, route.name),):
            target = await self.targets.target(owner, name)
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
            return route, Pending("SLEEPING", target.title, "Waking the app up.")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), WAKE_WAIT_S)
        return route, await self.targets.target(*key)

    async def _redirect(self, scope: Scope, receive: Receive, send: Send, location: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        query = scope.get("query_string", b"").decode("latin-1")
        await RedirectResponse(location + (f"?{query}" if query else ""), 307)(scope, receive, send)

    # --- HTTP --------------------------------------------------------------------------------------------
    async def _proxy(self, scope: Scope, receive: Receive, send: Send, route: Route, upstream: Upstream) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        path = route.upstream_path(upstream.forward_prefix) + (f"?{query}" if query else "")
        forwarded = _forwarded_headers(scope, route)
        if scope["type"] == "websocket":
            ws_url = "ws" + upstream.url.rstrip("/").removeprefix("http") + path
            touch = lambda: self.targets.touch(route.owner, route.name)  # noqa: E731
            await proxy_websocket(scope, receive, send, ws_url, forwarded, touch)
            return
        headers = _request_headers(scope, forwarded)
        has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
        request = httpx.Request(scope["method"], upstream.url.rstrip("/") + path, headers=headers,
                                content=_request_body(receive) if has_body else None)
        try:
            response = await self._http().send(request, stream=True)
        except httpx.HTTPError as exc:
            page = pages.upstream_error_page(f"{route.owner}/{route.name}", f"{type(exc).__name__}: {exc}")
            await HTMLResponse(page, 502)(scope, receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": _response_headers(response, upstream.url)})
            if "content-length" in response.headers or scope["method"] == "HEAD":
                await _relay_body(response, send)
            else:  # a stream (SSE, chunked): stop reading the app when the browser goes away
                await _relay_until_disconnect(response, send, receive)
        finally:
            await response.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # one client for all apps; no cookie jar (cookies belong to browsers, not to the gateway),
            # no proxy from the environment (apps are local), no limit on open streams
            self._client = httpx.AsyncClient(
                timeout=_TIMEOUT, trust_env=False, follow_redirects=False,
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=200),
            )
        return self._client

    # --- static sites --------------------------------------------------------------------------------------
    async def _serve_static(self, scope: Scope, receive: Receive, send: Send, route: Route, root: Path) -> None:
        files = self._static.get(root)
        if files is None:
            files = self._static[root] = StaticFiles(directory=root, html=True, check_dir=False)
        prefix = "" if route.via_host else route.prefix
        inner = {**scope, "path": prefix + route.rest, "root_path": prefix}
        try:
            await files(inner, receive, send)
        except Exception as exc:  # StaticFiles raises HTTPException for 404/405 outside a Starlette app
            status = getattr(exc, "status_code", 500)
            body = pages.missing_page(f"{route.owner}/{route.name}{route.rest}") if status == 404 else str(exc)
            await HTMLResponse(body, status)(scope, receive, send)


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


def _request_headers(scope: Scope, forwarded: list[tuple[str, str]]) -> list[tuple[str, str]]:
    raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
    dropped = HOP_BY_HOP | _connection_tokens(raw) | {name for name, _ in forwarded}
    return [(k, v) for k, v in raw if k not in dropped] + forwarded


def _response_headers(response: httpx.Response, upstream_url: str) -> list[tuple[bytes, bytes]]:
    raw = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw]
    dropped = HOP_BY_HOP | _connection_tokens(raw)
    base = upstream_url.rstrip("/")
    out = []
    for key, value in raw:
        if key in dropped:
            continue
        if key == "location" and value.startswith(base):  # the app's own address means "this host"
            value = value[len(base):] or "/"
        out.append((key.encode("latin-1"), value.encode("latin-1")))
    return out


def _connection_tokens(headers: list[tuple[str, str]]) -> set[str]:
    return {t.strip().lower() for k, v in headers if k == "connection" for t in v.split(",") if t.strip()}


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _relay_body(response: httpx.Response, send: Send) -> None:
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _relay_until_disconnect(response: httpx.Response, send: Send, receive: Receive) -> None:
    async def disconnected() -> None:
        message: Message = {}
        while message.get("type") != "http.disconnect":
            message = await receive()

    relay = asyncio.create_task(_relay_body(response, send))
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
