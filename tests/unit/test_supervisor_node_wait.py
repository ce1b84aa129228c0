"""An app whose node is away (the swarm node that holds its /data is down or drained) is not broken: the
supervisor launches it again with backoff until the node is back, and it runs with no `spaces restart`.

The backend is a fake (the supervisor's collaborator) that refuses launches while its "node" is away; the
supervisor, its loop and its probes are real."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from answering import serve_ok
from polling import wait_until_async

from spaces_runtime.config import Settings
from spaces_runtime.errors import NodeUnavailableError
from spaces_runtime.logs import LogBook
from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor

WAITING = "a/b: waiting for node w2, which holds its /data and is down"


class AwayNodeBackend:
    name = "fake"

    def __init__(self, url: str, refusals: int) -> None:
        self.url, self.refusals, self.launches = url, refusals, 0

    async def launch(self, spec: LaunchSpec, log: object) -> Instance:
        self.launches += 1
        if self.launches <= self.refusals:
            raise NodeUnavailableError(WAITING)
        return Instance(spec.space_id, self.url, "1", time.time())

    async def exited(self, instance: Instance) -> ExitInfo | None:
        return None

    async def stop(self, instance: Instance, grace_s: float) -> None:
        pass

    async def adopt(self) -> list[Instance]:
        return []


async def test_an_app_waits_for_its_node_and_runs_once_it_is_back(tmp_path: Path) -> None:
    server, ready = await serve_ok()
    backend = AwayNodeBackend(ready, refusals=7)  # more than a crash loop's 5: waiting is not crashing
    settings = Settings(data_dir=tmp_path, probe_interval_s=0.02, restart_backoff_initial_s=0.01,
                        restart_backoff_max_s=0.05)
    reports: list[tuple[Stage, str | None]] = []
    supervisor = Supervisor(backend, LogBook(tmp_path / "logs"), settings,
                            lambda _id, stage, _r, error: reports.append((stage, error)))
    spec = LaunchSpec(space_id="a/b", sdk="gradio", app_dir=tmp_path, app_file="app.py", base_path="/spaces/a/b")
    try:
        assert await supervisor.run_app(spec) is Stage.RUNNING
        assert backend.launches == 8
        stages = [stage for stage, _ in reports]
        assert Stage.RUNTIME_ERROR not in stages and stages[-1] is Stage.RUNNING
        waiting = [error for stage, error in reports if error == WAITING]
        assert len(waiting) == 1, f"the wait is reported once, not per retry: {reports}"
        run_log = (tmp_path / "logs").rglob("*")
        said = "".join(p.read_text() for p in run_log if p.is_file())
        assert said.count("trying again in") == 7, said
    finally:
        await supervisor.shutdown()
        server.close()


async def test_a_paused_app_stops_waiting_for_its_node(tmp_path: Path) -> None:
    server, ready = await serve_ok()
    backend = AwayNodeBackend(ready, refusals=10**6)
    settings = Settings(data_dir=tmp_path, probe_interval_s=0.02, restart_backoff_initial_s=0.01,
                        restart_backoff_max_s=0.02)
    supervisor = Supervisor(backend, LogBook(tmp_path / "logs"), settings, lambda *_: None)
    spec = LaunchSpec(space_id="a/b", sdk="gradio", app_dir=tmp_path, app_file="app.py", base_path="/spaces/a/b")
    try:
        await supervisor.start()
        started = asyncio.create_task(supervisor.run_app(spec))
        await wait_until_async(lambda: backend.launches >= 3, 10, "a few refused launches", interval=0.01)
        await supervisor.stop_app("a/b", Stage.PAUSED)
        assert await started is Stage.PAUSED
        tried = backend.launches
        await wait_until_async(lambda: supervisor.stage("a/b") is Stage.PAUSED, 5, "the pause", interval=0.01)
        for _ in range(20):  # several backoff delays: no launch after the pause
            await asyncio.sleep(0.02)
        assert backend.launches == tried
    finally:
        await supervisor.shutdown()
        server.close()
