"""An app whose node is away (the swarm node that holds its /data is down or drained) is not broken: the
supervisor launches it again with backoff until the node is back, and it runs with no `spaces restart`. The
callers that wait for a start (a deploy, a restart, a wake) are answered at once with why it waits.

The backend is a fake (the supervisor's collaborator) that refuses launches while its "node" is away; the
supervisor, its loop and its probes are real."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from answering import LiveSetBackend, serve_ok
from polling import wait_until_async

from spaces_runtime.config import Settings
from spaces_runtime.errors import AppRuntimeError, NodeUnavailableError
from spaces_runtime.logs import LogBook
from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.backend import Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor
from spaces_runtime.supervisor.probes import LivenessPolicy

WAITING = "a/b: waiting for node w2, which holds its /data and is down"


class AwayNodeBackend(LiveSetBackend):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.away, self.launches, self.refused = url, False, 0, 0
        self.instances: list[Instance] = []

    async def launch(self, spec: LaunchSpec, log: object) -> Instance:
        self.launches += 1
        if self.away:
            self.refused += 1
            raise NodeUnavailableError(WAITING)
        ref = str(self.launches)
        self.live.add(ref)
        self.instances.append(Instance(spec.space_id, self.url, ref, time.time()))
        return self.instances[-1]


@dataclass
class Rig:
    backend: AwayNodeBackend
    supervisor: Supervisor
    reports: list[tuple[Stage, str | None]]
    spec: LaunchSpec

    def waits_reported(self) -> int:
        return sum(1 for _, error in self.reports if error == WAITING)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server, ready = await serve_ok()
    backend = AwayNodeBackend(ready)
    settings = Settings(data_dir=tmp_path, probe_interval_s=0.02, restart_backoff_initial_s=0.01,
                        restart_backoff_max_s=0.04)
    reports: list[tuple[Stage, str | None]] = []
    supervisor = Supervisor(backend, LogBook(tmp_path / "logs"), settings,
                            lambda _id, stage, _r, error: reports.append((stage, error)),
                            liveness=LivenessPolicy(interval_s=0.02, timeout_s=0.5, failures=2))
    spec = LaunchSpec(space_id="a/b", sdk="gradio", app_dir=tmp_path, app_file="app.py", base_path="/spaces/a/b")
    try:
        yield Rig(backend, supervisor, reports, spec)
    finally:
        await supervisor.shutdown()
        server.close()


async def test_a_start_settles_at_once_waiting_and_runs_once_the_node_is_back(rig: Rig) -> None:
    rig.backend.away = True
    assert await asyncio.wait_for(rig.supervisor.run_app(rig.spec), 10) is Stage.APP_STARTING
    assert rig.supervisor.waiting("a/b") == WAITING
    await wait_until_async(lambda: rig.backend.refused >= 7, 10, "more refusals than a crash loop's 5",
                           interval=0.01)
    rig.backend.away = False
    await wait_until_async(lambda: rig.supervisor.stage("a/b") is Stage.RUNNING, 10, "the app to run by itself",
                           interval=0.01)
    assert rig.supervisor.waiting("a/b") is None
    assert Stage.RUNTIME_ERROR not in [stage for stage, _ in rig.reports]
    assert rig.waits_reported() == 1, f"the wait is reported once, not per retry: {rig.reports}"


async def test_a_restart_while_waiting_says_again_why_it_waits(rig: Rig) -> None:
    rig.backend.away = True
    await rig.supervisor.run_app(rig.spec)
    await wait_until_async(lambda: rig.backend.refused >= 4, 10, "a few refusals", interval=0.01)
    assert await asyncio.wait_for(rig.supervisor.restart_app("a/b"), 10) is Stage.APP_STARTING
    assert rig.waits_reported() == 2 and rig.reports[-1] == (Stage.APP_STARTING, WAITING)


async def test_a_redeploy_whose_node_went_away_waits_with_the_new_version(rig: Rig) -> None:
    assert await rig.supervisor.run_app(rig.spec) is Stage.RUNNING
    rig.backend.away = True  # gone before the liveness checks noticed
    newer = LaunchSpec(space_id="a/b", sdk="gradio", app_dir=rig.spec.app_dir / "v2", app_file="app.py",
                       base_path="/spaces/a/b")
    assert await asyncio.wait_for(rig.supervisor.run_app(newer), 10) is Stage.APP_STARTING
    assert rig.backend.live == set(), "the old version's task cannot run on the away node either"
    rig.backend.away = False
    await wait_until_async(lambda: rig.supervisor.stage("a/b") is Stage.RUNNING, 10, "the new version to run",
                           interval=0.01)
    assert rig.supervisor._apps["a/b"].spec is newer
    assert Stage.RUNTIME_ERROR not in [stage for stage, _ in rig.reports]


async def test_a_wake_while_its_node_is_away_says_why_at_once(rig: Rig) -> None:
    assert await rig.supervisor.run_app(rig.spec) is Stage.RUNNING
    await rig.supervisor.stop_app("a/b", Stage.SLEEPING)
    rig.backend.away = True
    with pytest.raises(AppRuntimeError, match="waiting for node w2"):
        await asyncio.wait_for(rig.supervisor.wake("a/b"), 10)


async def test_a_paused_app_stops_waiting_for_its_node(rig: Rig) -> None:
    rig.backend.away = True
    await rig.supervisor.run_app(rig.spec)
    await wait_until_async(lambda: rig.backend.refused >= 3, 10, "a few refused launches", interval=0.01)
    await rig.supervisor.stop_app("a/b", Stage.PAUSED)
    assert rig.supervisor.waiting("a/b") is None
    tried = rig.backend.launches
    for _ in range(20):  # several backoff delays pass: no launch after the pause (observed, not waited for)
        await asyncio.sleep(0.02)
    assert rig.backend.launches == tried and rig.supervisor.stage("a/b") is Stage.PAUSED


async def test_health_checks_unanswered_while_its_data_moves_are_not_a_hang(rig: Rig, tmp_path: Path) -> None:
    assert await rig.supervisor.run_app(rig.spec) is Stage.RUNNING
    rig.backend.held_because = "its /data is being copied to another node"
    with socket.socket() as closed:  # the task is stopped for the copy: nothing answers at its address
        closed.bind(("127.0.0.1", 0))
        rig.backend.instances[-1].upstream = f"http://127.0.0.1:{closed.getsockname()[1]}"
    run_log = tmp_path / "logs"

    def said() -> str:
        return "".join(p.read_text() for p in run_log.rglob("*") if p.is_file())
    await wait_until_async(lambda: said().count("no answer; its /data is being copied") >= 4, 10,
                           "health checks during the copy", interval=0.01)
    assert rig.backend.launches == 1 and rig.supervisor.stage("a/b") is Stage.RUNNING, "no restart meanwhile"
    rig.backend.held_because = None  # still no answer once the copy is over: now it is a hang
    await wait_until_async(lambda: rig.backend.launches == 2, 10, "the hung app's restart", interval=0.01)
