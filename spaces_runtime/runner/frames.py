"""The runner's Unix socket transport: length-prefixed frames on kept-alive connections (see ``appkit.wire.frame``).

HTTP parsing, the ASGI stack and ``http.client`` cost the per-call path more than the hop itself, so the socket
speaks frames: b"SPF1", u32 head length, u32 body length, a JSON head (``{"m", "p", "h"}`` in, ``{"s"}`` out),
the body. Requests on one connection are answered in order, one at a time (like HTTP/1.1 without pipelining).
The service answers predictions directly; anything else goes to the same Starlette app the TCP port serves,
called in-process through :func:`asgi_call`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from spaces_runtime.appkit.wire import FRAME, FRAME_MAGIC, Body, frame

Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, Body]]]
Refusal = Callable[[str, str, int], tuple[int, Body] | None]  # (method, path, body size) -> an early answer
MAX_HEAD = 64 * 1024
DISCARD_MAX = 1 << 30  # a body this far past its limit is not read to the end: the connection is closed


class FrameServer:
    def __init__(self, handle: Handler, refuse: Refusal) -> None:
        self.handle, self.refuse = handle, refuse
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, path: Path) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(path), limit=1 << 20)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()  # idle kept-alive connections would hold the server open
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the app went away mid-request; nothing to answer
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done."""
        try:
            prefix = await reader.readexactly(FRAME.size)
        except asyncio.IncompleteReadError:
            return False  # closed between requests: the normal end of a connection
        magic, hlen, blen = FRAME.unpack(prefix)
        if magic != FRAME_MAGIC or hlen > MAX_HEAD:
            await _answer(writer, 400, _plain_error(
                "this socket speaks runner frames, not HTTP",
                "use spaces_runtime.client, or the runner's TCP port (HTTP with a token)"))
            return False
        try:
            head = json.loads(await reader.readexactly(hlen))
            method, path, headers = str(head["m"]), str(head["p"]), {str(k).lower(): str(v)
                                                                      for k, v in dict(head["h"]).items()}
        except (ValueError, KeyError, TypeError):
            await _answer(writer, 400, _plain_error("the frame's head is not {m, p, h} JSON", None))
            return False
        early = self.refuse(method, path, blen)
        if early is not None:
            if blen > DISCARD_MAX:
                await _answer(writer, *early)
                return False
            await _discard(reader, blen)  # read, not kept: the client may still be writing it
            await _answer(writer, *early)
            return True
        body = await reader.readexactly(blen)
        await _answer(writer, *await self.handle(method, path, headers, body))
        return True


async def _answer(writer: asyncio.StreamWriter, status: int, body: Body) -> None:
    writer.writelines(frame({"s": status}, body))
    await writer.drain()


async def _discard(reader: asyncio.StreamReader, size: int) -> None:
    while size > 0:
        chunk = await reader.read(min(size, 1 << 20))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", size)
        size -= len(chunk)


def _plain_error(message: str, hint: str | None) -> bytes:
    return json.dumps({"error": {"code": "bad_input", "message": message, "hint": hint}}).encode()


async def asgi_call(app: Any, method: str, path: str, headers: Mapping[str, str], body: bytes
                    ) -> tuple[int, bytes]:
    """Run one request through an ASGI app in this process: status and the whole response body."""
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": urllib.parse.unquote(raw_path), "raw_path": raw_path.encode(), "query_string": query.encode(),
        "root_path": "", "client": ("unix", 0), "server": ("runner", 0),
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
                    if k != "content-length"] + [(b"content-length", str(len(body)).encode())],
    }
    status, chunks = 500, []
    sent = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not sent.is_set():
            sent.set()
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the app answers: the frame waits for it
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)
