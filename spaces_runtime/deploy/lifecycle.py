"""Lifecycle commands on a space: restart, pause, delete, wake, and bringing every space back after the platform
itself restarts."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.deploy.pipeline import Pipeline
from spaces_runtime.deploy.stagesink import StageSink
from spaces_runtime.deploy.versions import newest_version, sweep, version_name
from spaces_runtime.errors import SpecError
from spaces_runtime.events import EventHub
from spaces_runtime.logs import LogBook
from spaces_runtime.stages import ERROR_STAGES, Stage
from spaces_runtime.store import SpaceRecord, Store
from spaces_runtime.supervisor.backend import Instance
from spaces_runtime.supervisor.loop import Supervisor

log = logging.getLogger(__name__)
# a restart finding a space in one of these interrupted its deploy
IN_PROGRESS = frozenset({Stage.BUILDING, Stage.RUNNING_BUILDING, Stage.APP_STARTING, Stage.RUNNING_APP_STARTING})


class Lifecycle:
    def __init__(self, settings: Settings, store: Store, logs: LogBook, supervisor: Supervisor, stages: StageSink,
                 hub: EventHub, pipeline: Pipeline) -> None:
        self.settings = settings
        self.store = store
        self.logs = logs
        self.supervisor = supervisor
        self.stages = stages
        self.hub = hub
        self.pipeline = pipeline
        # what else forgets a deleted space (its secrets and variables): registered by the wiring
        self.on_delete: list[Callable[[str], None]] = []

    async def restart(self, space_id: str) -> SpaceRecord:
        record = self.store.get(space_id)
        if not record.code_dir:
            raise SpecError("this space has no code yet", hint="deploy it first: spaces deploy DIR")
        await self.pipeline.begin(space_id, "restart requested")
        self.store.update(space_id, desired="running")
        self.pipeline.launch(space_id, Path(record.code_dir))
        return self.store.get(space_id)

    async def pause(self, space_id: str) -> SpaceRecord:
        self.store.get(space_id)
        self.pipeline.cancel(space_id)
        self.store.update(space_id, desired="paused")
        await self.supervisor.stop_app(space_id, Stage.PAUSED)
        self.stages(space_id, Stage.PAUSED, "paused by request")
        return self.store.get(space_id)

    async def delete(self, space_id: str) -> None:
        self.store.get(space_id)
        self.pipeline.cancel(space_id)
        self.stages(space_id, Stage.DELETING, "deleted by request")
        await self.supervisor.stop_app(space_id, Stage.DELETING)
        await self.supervisor.remove_data(space_id)
        self.store.delete(space_id)
        for forget in self.on_delete:
            forget(space_id)
        owner, name = space_id.split("/", 1)
        shutil.rmtree(self.settings.apps_dir / owner / name, ignore_errors=True)
        shutil.rmtree(self.logs.root / space_id, ignore_errors=True)
        self.hub.publish({"type": "deleted", "id": space_id})

    async def wake(self, space_id: str) -> None:
        record = self.store.find(space_id)
        if record is None or record.stage != Stage.SLEEPING:
            return
        if self.supervisor.stage(space_id) is not None:
            await self.supervisor.wake(space_id)
        elif record.code_dir and not self.pipeline.is_deploying(space_id):
            await self.pipeline.begin(space_id, "woken by a visit")
            self.pipeline.launch(space_id, Path(record.code_dir))

    async def restore(self) -> None:
        """After `spaces serve` restarts: bring back every space that should run. Its environment is cached, so
        this is a start, not a rebuild; an app whose container outlived the platform is taken over instead. A
        deploy the restart interrupted starts again from its upload; nothing stays in a building stage."""
        shutil.rmtree(self.settings.data_dir / "tmp", ignore_errors=True)  # uploads cut off half-way
        survivors = {i.space_id: i for i in await self.supervisor.survivors()}
        wanted: dict[str, set[str]] = {}
        for record in self.store.spaces():
            survivor = survivors.pop(record.id, None)
            if record.stage == Stage.DELETING:
                self.store.delete(record.id)
                continue
            interrupted = self._interrupted_version(record)
            wanted[record.id] = {v for v in (version_name(record.code_dir), version_name(interrupted)) if v}
            if not await self._bring_back(record, interrupted, survivor) and survivor is not None:
                await self.supervisor.stop_survivor(survivor)
        for orphan in survivors.values():  # containers of spaces this platform no longer knows
            await self.supervisor.stop_survivor(orphan)
        for path in sweep(self.settings.apps_dir, wanted):
            log.info("removed %s: no space uses it", path)

    def _interrupted_version(self, record: SpaceRecord) -> Path | None:
        """The newest upload, when the restart cut its deploy off (it was building or starting, not yet the code)."""
        if record.desired != "running" or record.stage not in IN_PROGRESS:
            return None
        newest = newest_version(self.settings.apps_dir, record.id)
        return newest if newest is not None and version_name(newest) != version_name(record.code_dir) else None

    async def _bring_back(self, record: SpaceRecord, interrupted: Path | None, survivor: Instance | None) -> bool:
        """Start (or take over) what should run; True when the survivor was taken over."""
        if interrupted is not None:
            await self.pipeline.begin(record.id, "platform restarted: the interrupted deploy starts again")
            self.pipeline.launch(record.id, interrupted)
        elif record.desired == "running" and record.stage not in ERROR_STAGES and record.code_dir:
            await self.pipeline.begin(record.id, "platform restarted")
            self.pipeline.launch(record.id, Path(record.code_dir), adopt=survivor)
            return survivor is not None
        elif record.stage in IN_PROGRESS:
            self.stages(record.id, Stage.BUILD_ERROR, "platform restarted",
                        "the deploy was interrupted by a platform restart; deploy it again")
        return False

    async def shutdown(self) -> None:
        self.pipeline.cancel_all()
        await self.supervisor.shutdown()
