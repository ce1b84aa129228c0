"""WebSocket proxying: accept the browser's socket, open one to the app, and relay frames both ways.

The app sees the browser's Host, Origin and cookies, so same-origin checks (Streamlit's) pass as they would
without a proxy; the TCP connection itself goes to the upstream's address.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import websockets
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

# Close codes that may not travel in a close frame, and what to say instead.
_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}
_SKIPPED_HEADERS = frozenset({"host", "origin", "upgrade", "connection", "sec-websocket-key",
                              "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
                              "content-length", "transfer-encoding", "keep-alive", "te", "trailer"})


async def proxy_websocket(scope: Scope, receive: Receive, send: Send, upstream_url: str,
                          extra_headers: list[tuple[str, str]], touch: Callable[[], None],
                          heard: Callable[[], None]) -> None:
    """Relay one WebSocket between the ASGI client and ``upstream_url`` (ws://…) until either side closes;
    ``touch`` on every message from the visitor (a visit), ``heard`` on every message from the app (progress)."""
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        upstream = await _open(scope, upstream_url, extra_headers)
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI):
        await send({"type": "websocket.close", "code": 1011, "reason": "the app refused the connection"})
        return
    async with upstream:
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        touch()
        inbound = asyncio.create_task(_client_to_upstream(receive, upstream, touch))
        outbound = asyncio.create_task(_upstream_to_client(upstream, send, heard))
        done, pending = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()


async def _open(scope: Scope, upstream_url: str, extra_headers: list[tuple[str, str]]) -> ClientConnection:
    target = urlsplit(upstream_url)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    host = next((v for k, v in headers if k.lower() == "host"), "") or target.netloc
    origin = next((v for k, v in headers if k.lower() == "origin"), None)
    kept = [(k, v) for k, v in headers if k.lower() not in _SKIPPED_HEADERS and not k.lower().startswith("x-forw")]
    path = target.path + (f"?{target.query}" if target.query else "")
    return await connect(
        f"ws://{host}{path}",  # Host header as the browser sent it; the socket goes to host/port below
        host=target.hostname, port=target.port or 80,
        origin=cast(Origin, origin) if origin else None,
        subprotocols=[cast(Subprotocol, p) for p in scope.get("subprotocols") or []] or None,
        additional_headers=[*kept, *extra_headers],
        compression=None, proxy=None, user_agent_header=None, max_size=None, open_timeout=10,
    )


async def _client_to_upstream(receive: Receive, upstream: ClientConnection, touch: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code = _sendable(message.get("code"))
            await upstream.close(code=code, reason=message.get("reason") or "")
            return
        if message["type"] == "websocket.receive":
            touch()
            text = message.get("text")
            with contextlib.suppress(websockets.ConnectionClosed):
                await upstream.send(text if text is not None else message.get("bytes") or b"")


async def _upstream_to_client(upstream: ClientConnection, send: Send, heard: Callable[[], None]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for data in upstream:
            heard()
            key = "text" if isinstance(data, str) else "bytes"
            await send({"type": "websocket.send", key: data})
    close: dict[str, Any] = {"type": "websocket.close", "code": _sendable(upstream.close_code),
                             "reason": upstream.close_reason or ""}
    with contextlib.suppress(RuntimeError, OSError):  # the browser may be gone already
        await send(close)


def _sendable(code: int | None) -> int:
    if code is None:
        return 1000
    return _UNSENDABLE.get(code, code)
