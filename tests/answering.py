"""A tiny HTTP server on loopback that answers every request with 200: what a fake backend's instances point at,
so the real supervisor's readiness probes pass; and the part of such a fake backend every one of them shares."""

from __future__ import annotations

import asyncio

from spaces_runtime.supervisor.backend import ExitInfo, Instance


async def serve_ok() -> tuple[asyncio.AbstractServer, str]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


class LiveSetBackend:
    """A fake backend (the supervisor's collaborator) whose instance lives while its ref is in ``live``; a
    subclass says how ``launch`` makes one."""

    name = "fake"

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.held_because: str | None = None  # what ``held`` answers

    async def exited(self, instance: Instance) -> ExitInfo | None:
        return None if instance.backend_ref in self.live else ExitInfo(0, "stopped")

    async def stop(self, instance: Instance, grace_s: float) -> None:
        self.live.discard(instance.backend_ref)

    async def adopt(self) -> list[Instance]:
        return []

    def held(self, space_id: str) -> str | None:
        return self.held_because
