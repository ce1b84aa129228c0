"""A redeploy that is cancelled while its new version starts (a newer upload, a pause) leaves nothing running.

The backend is a fake (the supervisor's collaborator); the supervisor, its lock and its tasks are real."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from answering import LiveSetBackend, serve_ok
from polling import wait_until_async

from spaces_runtime.config import Settings
from spaces_runtime.logs import LogBook
from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.backend import Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor


class FakeBackend(LiveSetBackend):
    def __init__(self, ready_url: str, never_ready_url: str) -> None:
        super().__init__()
        self.urls = [ready_url, never_ready_url]

    async def launch(self, spec: LaunchSpec, log: object) -> Instance:
        ref = str(len(self.live) + 1)
        self.live.add(ref)
        return Instance(spec.space_id, self.urls.pop(0), ref, time.time())


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_cancelled_replacement_and_pause_leave_no_instance(tmp_path: Path) -> None:
    server, ready = await serve_ok()
    backend = FakeBackend(ready, closed_port_url())
    settings = Settings(data_dir=tmp_path, probe_interval_s=0.05)
    stages: list[Stage] = []
    supervisor = Supervisor(backend, LogBook(tmp_path / "logs"), settings, lambda _id, s, _r, _e: stages.append(s))
    spec = LaunchSpec(space_id="a/b", sdk="gradio", app_dir=tmp_path, app_file="app.py", base_path="/spaces/a/b")
    try:
        assert await supervisor.run_app(spec) is Stage.RUNNING
        replacement = asyncio.create_task(supervisor.run_app(spec))  # its version never becomes ready
        await wait_until_async(lambda: len(backend.live) == 2, 10, "the replacement to be launched", interval=0.01)
        replacement.cancel()
        await asyncio.gather(replacement, return_exceptions=True)
        assert backend.live == {"1"}, "the cancelled new version must be stopped"
        await supervisor.stop_app("a/b", Stage.PAUSED)
        assert backend.live == set()
    finally:
        await supervisor.shutdown()
        server.close()
