"""The stream clients of bench/bench_load.py: Streamlit WebSockets and Gradio queue SSE streams through the
gateway, held open for a whole run or opened and closed in turn, each kind counting what it saw.

A Streamlit client asks for a script run (BackMsg rerun_script) and reads ForwardMsgs until `script_finished`; a
Gradio client joins the queue with the app's `ticks` generator event and reads `/gradio_api/queue/data`. Every
loop is bounded in count and time; a held client reconnects (at most 1,000 times) after a disconnect, which it
counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

import httpx
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Origin, Subprotocol

RERUN_SCRIPT = b"Z\x00"  # Streamlit's BackMsg{rerun_script: {}}


@dataclass
class Held:
    """What one kind of held client saw, all its clients together."""

    opened: int = 0
    messages: int = 0
    rounds: int = 0  # finished Streamlit script runs / SSE generator steps
    errors: int = 0
    disconnects: int = 0
    longest_gap_s: float = 0.0
    longest_outage_s: float = 0.0  # from a dropped or refused stream to the next one that works
    notes: list[str] = field(default_factory=list)
    down_since: dict[int, float] = field(default_factory=dict)  # client → when its stream last failed

    def down(self, client: int) -> None:
        self.down_since.setdefault(client, time.monotonic())

    def up(self, client: int) -> None:
        since = self.down_since.pop(client, None)
        if since is not None:
            self.longest_outage_s = max(self.longest_outage_s, time.monotonic() - since)

    def fail(self, what: str, exc: BaseException | str) -> None:
        self.errors += 1
        self.note(f"{what}: {exc!r}")

    def drop(self, what: str) -> None:
        self.disconnects += 1
        self.note(what)

    def note(self, text: str) -> None:
        if len(self.notes) < 5:  # the first few say what happened; the counts say how often
            self.notes.append(text[:200])


async def script_run(ws: ClientConnection, timeout: float) -> int:
    """Ask for a Streamlit script run and read until it finishes; return the messages read."""
    await ws.send(RERUN_SCRIPT)
    count, deadline = 0, time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        count += 1
        message = ForwardMsg()
        message.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        if message.WhichOneof("type") == "script_finished":
            return count


async def hold_ws(url: str, origin: str, stop: asyncio.Event, held: Held, rerun_s: float, offset_s: float,
                  first_run: asyncio.Event, client: int) -> None:
    """One Streamlit session held open: a script run at once, then one every ``rerun_s`` (the clients' runs are
    spread over that interval by ``offset_s``)."""
    for _ in range(1000):  # reconnects are bounded
        if stop.is_set():
            return
        try:
            async with connect(url, subprotocols=[Subprotocol("streamlit")], origin=Origin(origin),
                               open_timeout=30, ping_interval=20, ping_timeout=60, max_size=None) as ws:
                held.opened += 1
                wait_s = offset_s
                while not stop.is_set():
                    began = time.monotonic()
                    held.messages += await script_run(ws, timeout=60)
                    held.rounds += 1
                    held.longest_gap_s = max(held.longest_gap_s, time.monotonic() - began)
                    held.up(client)
                    first_run.set()
                    await wait_or_recv(ws, stop, wait_s)
                    wait_s = rerun_s
            return
        except ConnectionClosed as exc:
            held.drop(f"ws closed: {exc!r}")
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            held.fail("ws", exc)
        held.down(client)
        first_run.set()
        await asyncio.sleep(1)  # back off before reconnecting


async def wait_or_recv(ws: ClientConnection, stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` (or until stop) while still reading, so a closed socket shows up at once."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.recv(), min(1.0, left))


async def sse_job(http: httpx.AsyncClient, base: str, fn_index: int, count: int, interval: float,
                  stop: asyncio.Event | None, held: Held, client: int = -1) -> str:
    """Join the Gradio queue with the generator event and read its SSE stream; return how it ended: "stopped"
    (the bench is over), "completed", "failed" (counted as an error) or "ended" (the stream closed early)."""
    session = uuid.uuid4().hex
    joined = await http.post(f"{base}/gradio_api/queue/join", json={
        "data": [count, interval], "fn_index": fn_index, "session_hash": session, "event_data": None})
    joined.raise_for_status()
    last = time.monotonic()
    async with http.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session}) as stream:
        stream.raise_for_status()
        held.opened += 1
        async for line in stream.aiter_lines():
            if stop is not None and stop.is_set():
                return "stopped"
            if not line.startswith("data:"):
                continue
            now, message = time.monotonic(), json.loads(line[5:])
            held.messages += 1
            held.longest_gap_s, last = max(held.longest_gap_s, now - last), now
            kind = message.get("msg")
            if kind == "process_generating":
                held.rounds += 1
                held.up(client)
            elif kind == "process_completed":
                if message.get("success", False):
                    return "completed"
                held.fail("sse job", str(message.get("output"))[:150])
                return "failed"
    return "stopped" if stop is not None and stop.is_set() else "ended"


async def hold_sse(http: httpx.AsyncClient, base: str, fn_index: int, count: int, interval: float,
                   stop: asyncio.Event, held: Held, start_in: float, client: int) -> None:
    await asyncio.sleep(start_in)
    for _ in range(1000):  # reconnects are bounded
        if stop.is_set():
            return
        try:
            outcome = await sse_job(http, base, fn_index, count, interval, stop, held, client)
            if outcome == "stopped":
                return
            if outcome != "failed":  # a held job must not end while the bench runs
                held.drop(f"sse stream {outcome} early")
        except httpx.HTTPError as exc:
            held.fail("sse", exc)
        held.down(client)
        await asyncio.sleep(1)  # back off before reconnecting


def fn_index_of(config_url: str, api_name: str) -> int:
    config = httpx.get(config_url, timeout=30).json()
    for i, dependency in enumerate(config["dependencies"]):
        if dependency.get("api_name") == api_name:
            return int(dependency.get("id", i))
    raise SystemExit(f"the Gradio app has no endpoint {api_name!r}")


async def churn(stop: asyncio.Event, ws_url: str, origin: str, http: httpx.AsyncClient, base: str, fn: int,
                ws_held: Held, sse_held: Held) -> None:
    """Short-lived streams through the gateway during the soak: one WebSocket and one SSE job every 2 s."""
    for _ in range(100_000):
        if stop.is_set():
            return
        began = time.monotonic()
        try:
            async with connect(ws_url, subprotocols=[Subprotocol("streamlit")], origin=Origin(origin),
                               open_timeout=30) as ws:
                ws_held.opened += 1
                ws_held.messages += await script_run(ws, timeout=60)
                ws_held.rounds += 1
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            ws_held.fail("churn ws", exc)
        try:
            if await sse_job(http, base, fn, 1, 0, None, sse_held) == "ended":
                sse_held.fail("churn sse", "the stream ended before the job completed")
        except httpx.HTTPError as exc:
            sse_held.fail("churn sse", exc)
        await wait_for_stop(stop, 2 - (time.monotonic() - began))


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
