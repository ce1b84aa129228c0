"""The gateway's HTTP/1.1 client to apps: pooled keep-alive connections, httptools' C parser, bodies streamed.

Why not httpx here: profiling the gateway under load (py-spy, bench/bench_gateway.py) put about two thirds of its
CPU in httpx/httpcore/anyio per request (pool bookkeeping, a readability syscall per pooled connection, anyio
stream layers, a failed ``import sniffio`` that searches sys.path every time). Apps are local, speak plain
HTTP/1.1, and the gateway only relays bytes, so a small asyncio Protocol with the parser uvicorn itself uses
does the same job at a fraction of the cost. httpx stays for everything else (probes, the CLI).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import cast

import httptools

CONNECT_TIMEOUT_S = 10.0
# While a request body is being relayed, each step (the browser sending a chunk, the app taking it) must make
# progress within this long, or the request is aborted and the app's connection closed: a browser that stops
# sending without closing would otherwise hold a task and two sockets, and the app a request, forever. It is an
# idle limit, so a slow but steady upload of any length passes. Once the body is complete there is deliberately
# no limit on the wait for the app's answer: a prediction may legitimately take minutes.
BODY_STALL_S = 120.0
IDLE_EXPIRY_S = 4.0  # under uvicorn's default 5 s keep-alive, so a pooled socket is rarely closed under us
MAX_IDLE_PER_APP = 128
_HIGH_WATER = 64 * 1024  # buffered response bytes before reading from the app pauses (the browser is slow)

Headers = list[tuple[bytes, bytes]]
_FRAMING = (b"content-length", b"transfer-encoding")


class UpstreamError(Exception):
    """The app could not be reached, or broke the connection before answering. ``before_sending``: nothing of
    the request left the gateway (the connection itself failed), so it may go elsewhere."""

    def __init__(self, message: str, before_sending: bool = False) -> None:
        super().__init__(message)
        self.before_sending = before_sending


class _Unsolicited(Exception):
    """Bytes after a complete answer, before the next request: raised inside the parser to stop it there."""


class _Connection(asyncio.Protocol):
    """One socket to an app; parses one response at a time and hands its body over chunk by chunk.

    Framing is the parser's: a response with both Content-Length and Transfer-Encoding, or two Content-Lengths,
    is malformed (llhttp refuses it) and its socket is closed, never reused. A socket is reused only for the
    response to the next request: anything the app sends past a complete answer (a second answer, stray bytes
    while pooled) closes it, so no later request can be answered with another request's bytes.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._wake: asyncio.Event = asyncio.Event()
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: Headers = []
        self.headers_done = self.complete = self.informational = self.keep_alive = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.received_any = False
        self.error: Exception | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.complete:  # else: bytes past a finished answer (on_message_begin); that answer stands
                self.error = UpstreamError(f"the app sent a malformed response ({exc})")
            self._close()
        self._wake.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and not self._framed():
            self.complete = True  # a body without length or chunking ends when the app closes
        self._wake.set()

    # --- httptools callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            raise _Unsolicited

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.informational = 100 <= self.status < 200  # e.g. 103 Early Hints; the real answer follows
        self.headers_done = not self.informational

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.informational:
            self.headers, self.informational = [], False
            return
        # asked now: llhttp forgets the message's keep-alive flags once this callback returns
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True

    # --- used by the pool and the response -------------------------------------------------------------------
    def _framed(self) -> bool:
        return any(k in (b"content-length", b"transfer-encoding") for k, _ in self.headers)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def wait(self) -> None:
        await self._wake.wait()
        self._wake.clear()

    def reusable(self) -> bool:
        return (not self.closed and self.complete and self.error is None and self.keep_alive
                and self.transport is not None and not self.transport.is_closing())

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("the app closed the connection")
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > _HIGH_WATER:
            await _drain(self)


async def _drain(conn: _Connection) -> None:
    while conn.transport is not None and not conn.closed and conn.transport.get_write_buffer_size() > _HIGH_WATER:
        await asyncio.sleep(0.001)  # rare: only a large upload to an app that reads slowly gets here


class UpstreamResponse:
    """Status and headers of an app's answer; ``body()`` yields its chunks as they arrive."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, int], conn: _Connection, head_only: bool) -> None:
        self._pool, self._key, self._conn = pool, key, conn
        self.status = conn.status
        self.headers = conn.headers
        self.has_length = any(k == b"content-length" for k, _ in conn.headers)
        self._head_only = head_only

    async def body(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if self._head_only:
            return
        while True:
            while conn.chunks:
                chunk = conn.chunks.popleft()
                conn.buffered -= len(chunk)
                if conn.buffered <= _HIGH_WATER // 2 and conn.transport is not None and not conn.closed:
                    conn.transport.resume_reading()
                yield chunk
            if conn.complete:
                return
            if conn.closed or conn.error is not None:
                raise conn.error or UpstreamError("the app closed the connection mid-response")
            await conn.wait()

    def close(self) -> None:
        """Give the connection back when the answer was read to its end, else drop it."""
        conn = self._conn
        if not self._head_only and conn.reusable() and not conn.chunks:
            self._pool._release(self._key, conn)
        else:
            conn._close()


class UpstreamPool:
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(self, host: str, port: int, method: str, target: bytes, headers: Headers,
                      body: AsyncIterator[bytes] | None, chunked: bool) -> UpstreamResponse:
        """Send one request; return once the app's status and headers arrived. A bodiless request that meets a
        pooled socket the app had just closed is sent once more on a fresh one."""
        key = (host, port)
        head = _request_head(method, target, headers, body is not None, chunked)
        for attempt in range(2):
            conn = await self._acquire(key, fresh=attempt > 0)
            try:
                await _send(conn, head, body, chunked)
                await _await_head(conn)
            except UpstreamError:
                conn._close()
                if attempt == 0 and body is None and not conn.received_any and conn.idle_since:
                    continue
                raise
            except BaseException:
                # the body's source failed (the browser left mid-upload) or the task was cancelled: the app would
                # wait for the rest of the request, so end it by closing the connection, never pool it
                conn._close()
                raise
            return UpstreamResponse(self, key, conn, head_only=method == "HEAD")
        raise AssertionError("unreachable")

    async def _acquire(self, key: tuple[str, int], fresh: bool) -> _Connection:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_EXPIRY_S:
                conn._reset()
                return conn
            conn._close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(_Connection, *key), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to the app at {key[0]}:{key[1]} ({exc})", True) from exc
        return conn

    def _release(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_APP:
            conn._close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn._close()
        self._idle.clear()


def _request_head(method: str, target: bytes, headers: Headers, has_body: bool, chunked: bool) -> bytes:
    """The request line and headers with exactly one framing of the body, the one this client sends: a caller's
    Transfer-Encoding, or a Content-Length beside chunking (or without a body), never reaches the app, where the
    two would disagree on where this request ends and the next begins (request smuggling)."""
    lengths = {v.strip() for k, v in headers if k.lower() == b"content-length"}
    if has_body and not chunked and len(lengths) != 1:
        raise UpstreamError(f"a request body needs one Content-Length, found {len(lengths)} different")
    lines = [method.encode("latin-1"), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if name.lower() not in _FRAMING:
            lines += [name, b": ", value, b"\r\n"]
    if has_body:
        lines.append(b"transfer-encoding: chunked\r\n" if chunked else b"content-length: %b\r\n" % lengths.pop())
    lines.append(b"\r\n")
    return b"".join(lines)


async def _send(conn: _Connection, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool) -> None:
    await conn.write(head)
    if body is not None:
        await _send_body(conn, body, chunked)


async def _send_body(conn: _Connection, body: AsyncIterator[bytes], chunked: bool) -> None:
    """Relay the body; every chunk must arrive and be taken within BODY_STALL_S of the previous one."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(BODY_STALL_S) as deadline:
            async for chunk in body:
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                deadline.reschedule(loop.time() + BODY_STALL_S)
            if chunked:
                await conn.write(b"0\r\n\r\n")
    except TimeoutError as exc:
        raise UpstreamError(f"the request body made no progress for {BODY_STALL_S:g} s (the browser stopped "
                            "sending it or the app stopped reading it)") from exc


async def _await_head(conn: _Connection) -> None:
    # no timeout: the body is complete (see BODY_STALL_S) and an app may take minutes to answer a prediction
    while not conn.headers_done:
        if conn.error is not None:
            raise conn.error
        if conn.closed:
            raise UpstreamError("the app closed the connection without answering")
        await conn.wait()
