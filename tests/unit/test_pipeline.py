"""The deploy pipeline and lifecycle, with a fake backend and environment builder (their pure collaborators); the
store (a real SQLite file), the log book, the stage sink, the supervisor and the deploy tasks are the real ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from answering import serve_ok

from builder.plan import BuildPlan
from builder.spec import AppSpec
from spaces_runtime import appfiles
from spaces_runtime.config import Settings
from spaces_runtime.deploy.environments import BuiltEnvironment
from spaces_runtime.deploy.lifecycle import Lifecycle
from spaces_runtime.deploy.pipeline import Pipeline
from spaces_runtime.deploy.stagesink import StageSink
from spaces_runtime.errors import BuildError
from spaces_runtime.events import EventHub
from spaces_runtime.logs import LogBook, LogSink
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor

README = "---\ntitle: Demo\nsdk: gradio\nsdk_version: 6.31.0\n---\n"


class FakeBackend:
    """Instances are addresses of one tiny HTTP server that answers every probe with 200."""

    name = "fake"

    def __init__(self, url: str) -> None:
        self.url = url
        self.live: dict[str, str] = {}  # backend_ref -> space_id
        self.launched: list[LaunchSpec] = []
        self.survivors: list[Instance] = []
        self.removed_data: list[str] = []
        self._next = 0

    async def launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        self._next += 1
        self.launched.append(spec)
        self.live[str(self._next)] = spec.space_id
        return Instance(spec.space_id, self.url, str(self._next), time.time())

    async def exited(self, instance: Instance) -> ExitInfo | None:
        return None if instance.backend_ref in self.live else ExitInfo(0, "stopped")

    async def stop(self, instance: Instance, grace_s: float) -> None:
        self.live.pop(instance.backend_ref, None)

    async def adopt(self) -> list[Instance]:
        for survivor in self.survivors:
            self.live[survivor.backend_ref] = survivor.space_id
        return list(self.survivors)

    def held(self, space_id: str) -> str | None:
        return None

    def attach_logs(self, instance: Instance, log: LogSink) -> None:
        log("following an adopted app")

    async def remove_data(self, space_id: str) -> None:
        self.removed_data.append(space_id)


class FakeEnvironments:
    """Builds nothing; ``hold`` makes a build wait (to race a newer upload against it), ``fail`` makes it fail."""

    def __init__(self, env_dir: Path) -> None:
        self.env_dir = env_dir
        self.hold: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fail: str | None = None
        self.built: list[str] = []

    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        if self.hold is not None and self.loop is not None:
            asyncio.run_coroutine_threadsafe(self.hold.wait(), self.loop).result(timeout=30)
        if self.fail:
            raise BuildError(self.fail, log_tail="uv: resolution failed")
        self.built.append(spec.title)
        log(f"built {spec.title}")
        return BuiltEnvironment(env_dir=self.env_dir)


@dataclass
class Deploys:
    store: Store
    logs: LogBook
    backend: FakeBackend
    environments: FakeEnvironments
    pipeline: Pipeline
    lifecycle: Lifecycle
    settings: Settings
    tmp: Path

    async def upload(self, space_id: str, files: dict[str, str]) -> None:
        folder = self.tmp / f"src-{time.time_ns()}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        archive = self.tmp / f"{time.time_ns()}.tar.gz"
        archive.write_bytes(appfiles.pack(folder))
        owner, name = space_id.split("/")
        await self.pipeline.accept_upload(owner, name, archive)

    async def settled(self, space_id: str, wanted: Callable[[Stage], bool] | None = None) -> Stage:
        """The stage once no deploy task runs for the space any more (and ``wanted`` holds)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stage = self.store.get(space_id).stage
            if not self.pipeline.is_deploying(space_id) and (wanted is None or wanted(stage)):
                return stage
            await asyncio.sleep(0.02)
        raise AssertionError(f"{space_id} did not settle: {self.store.get(space_id).stage}")

    def versions(self, space_id: str) -> list[Path]:
        root = self.settings.apps_dir / space_id / "versions"
        return sorted(root.iterdir()) if root.is_dir() else []


@pytest.fixture
async def deploys(tmp_path: Path) -> AsyncIterator[Deploys]:
    server, url = await serve_ok()
    settings = Settings(data_dir=tmp_path / "data", probe_interval_s=0.05, runner_enabled=False)
    store, logs, hub = Store(settings.db_path), LogBook(settings.data_dir / "logs"), EventHub()
    logs.bind_loop(asyncio.get_running_loop())
    stages = StageSink(store, hub)
    backend, environments = FakeBackend(url), FakeEnvironments(tmp_path / "env")
    environments.loop = asyncio.get_running_loop()
    supervisor = Supervisor(backend, logs, settings, stages)
    pipeline = Pipeline(settings, store, logs, supervisor, stages, hub, environments)
    lifecycle = Lifecycle(settings, store, logs, supervisor, stages, hub, pipeline)
    try:
        yield Deploys(store, logs, backend, environments, pipeline, lifecycle, settings, tmp_path)
    finally:
        await lifecycle.shutdown()
        server.close()


async def test_an_upload_builds_starts_and_becomes_the_spaces_code(deploys: Deploys) -> None:
    await deploys.upload("alice/demo", {"README.md": README, "app.py": "print('v1')"})
    assert await deploys.settled("alice/demo") is Stage.RUNNING
    record = deploys.store.get("alice/demo")
    assert record.code_dir is not None and Path(record.code_dir, "app.py").read_text() == "print('v1')"
    assert [e.stage for e in deploys.store.events("alice/demo")] == [Stage.BUILDING, Stage.APP_STARTING,
                                                                     Stage.RUNNING]
    launched = deploys.backend.launched[-1]
    assert launched.env["SPACE_ID"] == "alice/demo" and launched.env["SPACE_TITLE"] == "Demo"
    assert "built Demo" in deploys.logs.read("alice/demo", "build")


async def test_a_broken_readme_ends_in_config_error_and_keeps_the_running_code(deploys: Deploys) -> None:
    await deploys.upload("alice/demo", {"README.md": README, "app.py": "print('v1')"})
    assert await deploys.settled("alice/demo") is Stage.RUNNING
    good = deploys.store.get("alice/demo").code_dir
    await deploys.upload("alice/demo", {"README.md": "---\nsdk: gradoi\n---\n", "app.py": "print('v2')"})
    assert await deploys.settled("alice/demo", lambda s: s is not Stage.RUNNING_BUILDING) is Stage.CONFIG_ERROR
    record = deploys.store.get("alice/demo")
    assert "README.md line 2" in (record.error or "") and "gradoi" in (record.error or "")
    assert record.code_dir == good
    assert [p.name for p in deploys.versions("alice/demo")] == [Path(good).name], "the failed version is removed"


async def test_a_failing_build_says_why_in_the_stage_and_the_log(deploys: Deploys) -> None:
    deploys.environments.fail = "requirements.txt line 1: no version of nosuchpackage"
    await deploys.upload("alice/demo", {"README.md": README, "app.py": "print(1)"})
    assert await deploys.settled("alice/demo") is Stage.BUILD_ERROR
    error = deploys.store.get("alice/demo").error or ""
    assert "requirements.txt line 1" in error and "uv: resolution failed" in error
    assert "ERROR: requirements.txt line 1" in deploys.logs.read("alice/demo", "build")
    assert deploys.backend.launched == []


async def test_a_newer_upload_cancels_the_build_in_progress(deploys: Deploys) -> None:
    deploys.environments.hold = asyncio.Event()
    await deploys.upload("alice/demo", {"README.md": README.replace("Demo", "First"), "app.py": "print(1)"})
    await deploys.upload("alice/demo", {"README.md": README.replace("Demo", "Second"), "app.py": "print(2)"})
    deploys.environments.hold.set()
    assert await deploys.settled("alice/demo") is Stage.RUNNING
    assert [spec.env["SPACE_TITLE"] for spec in deploys.backend.launched] == ["Second"]
    assert "Second" in deploys.store.get("alice/demo").card["title"]


async def test_delete_removes_the_app_its_data_and_its_folders(deploys: Deploys) -> None:
    await deploys.upload("alice/demo", {"README.md": README, "app.py": "print(1)"})
    assert await deploys.settled("alice/demo") is Stage.RUNNING
    forgotten: list[str] = []
    deploys.lifecycle.on_delete.append(forgotten.append)  # e.g. its secrets
    await deploys.lifecycle.delete("alice/demo")
    assert forgotten == ["alice/demo"]
    assert deploys.store.find("alice/demo") is None
    assert deploys.backend.live == {} and deploys.backend.removed_data == ["alice/demo"]
    assert not (deploys.settings.apps_dir / "alice" / "demo").exists()


async def test_restore_takes_over_survivors_and_stops_orphans(deploys: Deploys) -> None:
    await deploys.upload("alice/demo", {"README.md": README, "app.py": "print(1)"})
    assert await deploys.settled("alice/demo") is Stage.RUNNING
    await deploys.lifecycle.shutdown()  # the platform goes away; pretend its app outlived it, beside an orphan
    deploys.backend.survivors = [Instance("alice/demo", deploys.backend.url, "survivor", time.time()),
                                 Instance("gone/app", deploys.backend.url, "orphan", time.time())]
    launches = len(deploys.backend.launched)
    await deploys.lifecycle.restore()
    assert await deploys.settled("alice/demo", lambda s: s is Stage.RUNNING) is Stage.RUNNING
    assert len(deploys.backend.launched) == launches, "a survivor is taken over, not started twice"
    assert set(deploys.backend.live) == {"survivor"}, "the orphan is stopped"
    assert "following an adopted app" in deploys.logs.read("alice/demo", "run")
