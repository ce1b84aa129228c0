"""The gateway's HTTP/1.1 client to apps (spaces_runtime.gateway.upstream) against a tiny app written here that
answers with hand-written bytes: framing by length, chunks and close; kept-alive sockets; answers cut short;
answers larger than the client's buffer; and both ways of smuggling a request past the framing."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from polling import wait_until_async

from spaces_runtime.gateway.upstream import Headers, UpstreamError, UpstreamPool, UpstreamResponse


@dataclass(frozen=True)
class Reply:
    data: bytes
    close: bool = False  # close the socket after writing, instead of waiting for the next request
    then: bytes = b""  # written in a write of its own once ``data`` is on its way: bytes nobody asked for


@dataclass(frozen=True)
class Seen:
    connection: int  # 0 for the app's first accepted socket, 1 for the next...
    head: bytes  # request line and headers as they arrived
    body: bytes


@dataclass
class App:
    """For each request it reads (framed by Content-Length or chunks, as a plain app would), writes the next
    reply of its script; records what it saw."""

    replies: list[Reply]
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    hung_up: set[int] = field(default_factory=set)  # connections the client closed
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number, self.connections = self.connections, self.connections + 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                self.seen.append(Seen(number, head, await read_body(reader, head)))
                reply = self.replies.pop(0)
                writer.write(reply.data)
                await writer.drain()
                if reply.then:
                    writer.write(reply.then)
                    await writer.drain()
                if reply.close:
                    return
            await reader.read()  # until the client closes the socket
            self.hung_up.add(number)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.hung_up.add(number)
        finally:
            writer.close()


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    fields = dict(line.split(b":", 1) for line in head.lower().split(b"\r\n")[1:] if b":" in line)
    if fields.get(b"transfer-encoding", b"").strip() == b"chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # the empty trailer section
        return body
    return await reader.readexactly(int(fields.get(b"content-length", b"0")))


@pytest.fixture
async def app_with() -> AsyncIterator[Callable[[list[Reply]], Awaitable[App]]]:
    """``app = await app_with(replies)``: an App listening on a loopback port until the test ends."""
    servers: list[asyncio.Server] = []

    async def start(replies: list[Reply]) -> App:
        app = App(list(replies))
        server = await asyncio.start_server(app.serve, "127.0.0.1", 0)
        servers.append(server)
        app.port = server.sockets[0].getsockname()[1]
        return app

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool()
    yield pool
    pool.close()


def ok(body: bytes, *headers: bytes) -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), b"".join(headers), body))


async def get(pool: UpstreamPool, app: App, path: bytes = b"/", headers: Headers | None = None,
              body: list[bytes] | None = None, chunked: bool = False) -> UpstreamResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in body or []:
            yield chunk

    method = "GET" if body is None else "POST"
    return await pool.request("127.0.0.1", app.port, method, path, [(b"host", b"app"), *(headers or [])],
                              None if body is None else chunks(), chunked)


async def read(response: UpstreamResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.body()])
    finally:
        response.close()


async def test_answers_framed_by_length_come_back_on_one_kept_alive_socket(app_with, pool) -> None:
    app = await app_with([ok(b"first"), ok(b"second"), ok(b"")])
    responses = [await read(await get(pool, app, b"/%d" % i)) for i in range(3)]
    assert responses == [b"first", b"second", b""]
    assert app.connections == 1, "each request opened a socket of its own: kept-alive sockets were not reused"
    assert [s.head.split(b" ")[1] for s in app.seen] == [b"/0", b"/1", b"/2"]


async def test_a_chunked_answer_is_dechunked_and_the_socket_reused(app_with, pool) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n"
               b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nD\r\nin\r\n\r\nchunks.\r\n0\r\nx-trailer: t\r\n\r\n")
    app = await app_with([Reply(chunked), ok(b"after")])
    response = await get(pool, app)
    assert response.status == 200 and not response.has_length
    assert (b"transfer-encoding", b"chunked") in response.headers
    assert await read(response) == b"Wikipedia in\r\n\r\nchunks."
    assert await read(await get(pool, app)) == b"after"
    assert app.connections == 1


async def test_an_informational_answer_is_skipped_for_the_real_one(app_with, pool) -> None:
    app = await app_with([Reply(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
                                b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone")])
    response = await get(pool, app)
    assert response.status == 201 and (b"link", b"</a.css>; rel=preload") not in response.headers
    assert await read(response) == b"done"


async def test_a_second_answer_sent_at_once_is_not_handed_to_the_next_request(app_with, pool) -> None:
    """An app that answers twice (as if two requests were pipelined): the first answer is this request's; the
    second belongs to no request, so the socket goes and the next request gets the app's real answer."""
    app = await app_with([Reply(ok(b"mine").data + ok(b"stray").data), ok(b"yours")])
    first = await get(pool, app)
    assert await read(first) == b"mine"
    assert (b"content-length", b"4") in first.headers and len(first.headers) == 1
    assert await read(await get(pool, app)) == b"yours"
    assert app.connections == 2 and 0 in app.hung_up


async def test_bytes_sent_after_a_complete_answer_close_the_socket(app_with, pool) -> None:
    """Stray bytes behind an answer (arriving with it or once the socket is idle in the pool) are no answer to
    anything: the client hangs up rather than read them as the next request's answer."""
    app = await app_with([Reply(ok(b"one").data, then=ok(b"stale").data), ok(b"two")])
    assert await read(await get(pool, app)) == b"one"
    await wait_until_async(lambda: 0 in app.hung_up, 10, "the client to close the socket with stray bytes")
    assert await read(await get(pool, app)) == b"two"
    assert app.connections == 2


@pytest.mark.parametrize("cut", [
    b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nonly ten b\r\n",
])
async def test_an_answer_cut_short_is_an_error_after_what_arrived(app_with, pool, cut: bytes) -> None:
    app = await app_with([Reply(cut, close=True), ok(b"fresh")])
    response = await get(pool, app)
    received: list[bytes] = []
    with pytest.raises(UpstreamError, match="closed the connection mid-response"):
        async for chunk in response.body():
            received.append(chunk)
    response.close()
    assert b"".join(received) == b"only ten b"
    assert await read(await get(pool, app)) == b"fresh"
    assert app.connections == 2


async def test_an_answer_without_length_or_chunks_ends_when_the_app_closes(app_with, pool) -> None:
    app = await app_with([Reply(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nto the end", close=True),
                          ok(b"next")])
    response = await get(pool, app)
    assert not response.has_length
    assert await read(response) == b"to the end"
    assert await read(await get(pool, app)) == b"next"
    assert app.connections == 2


async def test_closing_before_answering_is_an_error(app_with, pool) -> None:
    app = await app_with([Reply(b"", close=True)])
    with pytest.raises(UpstreamError, match="closed the connection without answering"):
        await get(pool, app, headers=[(b"content-length", b"1")], body=[b"x"])


async def test_an_answer_larger_than_the_buffer_arrives_whole_and_the_socket_is_reused(app_with, pool) -> None:
    """8 MiB is 128 times the bytes the client buffers before it stops reading from the app; it reads on as the
    body is consumed."""
    payload = os.urandom(8 * 1024 * 1024)
    app = await app_with([ok(payload), ok(b"small")])
    response = await get(pool, app)
    digest, chunks = hashlib.sha256(), 0
    async for chunk in response.body():
        digest.update(chunk)
        chunks += 1
        await asyncio.sleep(0)  # a reader that takes turns with the event loop, like a browser's socket
    response.close()
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest() and chunks > 1
    assert await read(await get(pool, app)) == b"small"
    assert app.connections == 1


async def test_an_answer_with_both_length_and_chunks_is_refused_not_split(app_with, pool) -> None:
    """The body as chunks ends at once and leaves a whole second answer behind: were the socket kept, that
    answer would go to the next request (response splitting). The answer is refused and the socket closed."""
    smuggled = ok(b"smuggled").data
    both = Reply(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n%b"
                 % (5 + len(smuggled), smuggled))
    app = await app_with([both, ok(b"genuine")])
    with pytest.raises(UpstreamError, match="malformed response"):
        await get(pool, app)
    assert await read(await get(pool, app)) == b"genuine"
    assert app.connections == 2


async def test_an_answer_with_two_lengths_is_refused(app_with, pool) -> None:
    app = await app_with([Reply(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 7\r\n\r\nokstray")])
    with pytest.raises(UpstreamError, match="malformed response"):
        await get(pool, app)


def framing(seen: Seen) -> list[bytes]:
    return [line.lower() for line in seen.head.split(b"\r\n")
            if line.lower().startswith((b"content-length:", b"transfer-encoding:"))]


async def test_a_chunked_request_never_also_carries_a_length(app_with, pool) -> None:
    """A caller's Content-Length beside chunking would let an app that reads lengths take the chunks' framing
    for the start of another request. The app sees one framing, and the next request on the socket intact."""
    app = await app_with([ok(b"one"), ok(b"two")])
    headers = [(b"content-length", b"3"), (b"Transfer-Encoding", b"gzip")]
    assert await read(await get(pool, app, b"/upload", headers, [b"GET /admin HTTP/1.1\r\n", b"\r\n"], True)) \
        == b"one"
    assert await read(await get(pool, app, b"/next")) == b"two"
    assert framing(app.seen[0]) == [b"transfer-encoding: chunked"]
    assert app.seen[0].body == b"GET /admin HTTP/1.1\r\n\r\n"
    assert [s.head.split(b" ")[1] for s in app.seen] == [b"/upload", b"/next"] and app.connections == 1


async def test_a_request_framed_by_length_never_also_says_chunked(app_with, pool) -> None:
    app = await app_with([ok(b"one")])
    headers = [(b"transfer-encoding", b"chunked"), (b"content-length", b"5")]
    assert await read(await get(pool, app, b"/upload", headers, [b"he", b"llo"])) == b"one"
    assert framing(app.seen[0]) == [b"content-length: 5"] and app.seen[0].body == b"hello"


async def test_a_request_without_a_body_carries_no_length(app_with, pool) -> None:
    """Else the app would wait for a body that never comes, or read the next request as it."""
    app = await app_with([ok(b"one"), ok(b"two")])
    assert await read(await get(pool, app, b"/a", [(b"content-length", b"12")])) == b"one"
    assert await read(await get(pool, app, b"/b")) == b"two"
    assert framing(app.seen[0]) == [] and app.connections == 1


async def test_a_request_with_conflicting_lengths_is_not_sent(app_with, pool) -> None:
    app = await app_with([ok(b"never")])
    with pytest.raises(UpstreamError, match="one Content-Length"):
        await get(pool, app, b"/", [(b"content-length", b"3"), (b"content-length", b"4")], [b"abcd"])
    assert app.seen == []
