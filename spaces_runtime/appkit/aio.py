"""The asyncio client: frames over the Unix socket or HTTP/1.1 over TCP, on kept-alive streams (no extra
dependency)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from spaces_runtime.appkit.address import Address, ConnectAttempts, quoted
from spaces_runtime.appkit.wire import FRAME, FRAME_MAGIC, Body, decode, error_from, frame, joined, request_body, result
from spaces_runtime.errors import RunnerError


class AsyncRunner:
    """asyncio client speaking HTTP/1.1 over kept-alive streams (no extra dependency)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0, connect_wait: float | None = None) -> None:
        self.address = Address(url, token, app_id, timeout, connect_wait)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def model(self, name: str) -> AsyncModel:
        return AsyncModel(self, name)

    async def request(self, method: str, path: str, body: Body = b"",
                      headers: Mapping[str, str] | None = None) -> bytes:
        roundtrip = _frame_roundtrip if self.address.unix_path else _http_roundtrip
        all_headers = {**self.address.headers, **(headers or {})}
        for attempt in (0, 1):
            reused = attempt == 0 and bool(self._idle)
            reader, writer = self._idle.pop() if reused else await self._open()
            try:
                status, keep, data = await asyncio.wait_for(
                    roundtrip(reader, writer, method, path, body, all_headers), self.address.timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if not reused:
                    raise
                await self.aclose()  # a kept-alive stream went stale (the runner restarted): so did the others
                continue
            except BaseException:
                writer.close()  # timed out or cancelled mid-answer: the stream is out of step
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            if status >= 400:
                raise error_from(status, data)
            return data
        raise AssertionError("unreachable")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new stream, waiting (ConnectAttempts) while nothing listens at the address yet."""
        a = self.address
        attempts = ConnectAttempts(a)
        while True:
            try:
                if a.unix_path:
                    return await asyncio.open_unix_connection(a.unix_path, limit=2**24)
                return await asyncio.open_connection(a.host, a.port, limit=2**24)
            except OSError as exc:
                await asyncio.sleep(attempts.pause_after(exc))

    async def models(self) -> list[dict[str, Any]]:
        return json.loads(await self.request("GET", "/v1/models"))["models"]

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _frame_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                           body: Body, headers: Mapping[str, str]) -> tuple[int, bool, bytes]:
    writer.writelines(frame({"m": method, "p": path, "h": dict(headers)}, body))
    await writer.drain()
    magic, hlen, blen = FRAME.unpack(await reader.readexactly(FRAME.size))
    if magic != FRAME_MAGIC:
        raise RunnerError(f"the runner answered {magic!r}, not a frame", hint="is SPACES_RUNNER_URL a runner?")
    rest = await reader.readexactly(hlen + blen)
    return int(json.loads(rest[:hlen])["s"]), True, rest[hlen:]


async def _http_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                          body: Body, headers: Mapping[str, str]) -> tuple[int, bool, bytes]:
    data = joined(body)
    head = [f"{method} {path} HTTP/1.1", "Host: runner", f"Content-Length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    status_line = await reader.readuntil(b"\r\n")
    if not status_line:
        raise ConnectionError("runner closed the connection")
    status = int(status_line.split()[1])
    length, keep = 0, True
    raw = await reader.readuntil(b"\r\n\r\n")
    for line in raw.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        if key.lower() == "content-length":
            length = int(value)
        elif key.lower() == "connection" and value.strip().lower() == "close":
            keep = False
    return status, keep, await reader.readexactly(length)


class AsyncModel:
    def __init__(self, runner: AsyncRunner, name: str) -> None:
        self.runner, self.name = runner, name

    async def predict(self, inputs: Any, *, deadline_s: float | None = None, **params: Any) -> Any:
        headers = {"x-spaces-deadline-ms": str(int(deadline_s * 1000))} if deadline_s else None
        data = await self.runner.request("POST", f"/v1/models/{quoted(self.name)}/predict",
                                         request_body(inputs, params), headers)
        return result(*decode(data))
