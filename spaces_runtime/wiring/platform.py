"""The built platform: its components, and the order they start and stop in."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from spaces_runtime.auth.accounts import Accounts
from spaces_runtime.auth.authenticate import Authenticator
from spaces_runtime.auth.secrets import SpaceSecrets
from spaces_runtime.config import Settings
from spaces_runtime.deploy.lifecycle import Lifecycle
from spaces_runtime.deploy.pipeline import Pipeline
from spaces_runtime.deploy.stagesink import StageSink
from spaces_runtime.deploy.targets import SpaceTargets
from spaces_runtime.events import EventHub
from spaces_runtime.logs import LogBook
from spaces_runtime.store import Store
from spaces_runtime.supervisor.loop import Supervisor

if TYPE_CHECKING:
    from spaces_runtime.housekeeping.collect import Housekeeper


class ModelRunner(Protocol):
    """What the platform asks of its model runner: the embedded ``runner.server.RunnerService``, or on swarm the
    nodes' runners together (``swarm.runners.RunnerFleet``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def models(self) -> list[dict[str, Any]]: ...

    def metrics_text(self) -> str: ...


@dataclass
class Platform:
    settings: Settings
    store: Store
    accounts: Accounts
    auth: Authenticator
    secrets: SpaceSecrets  # each space's secrets (sealed) and variables
    logs: LogBook
    hub: EventHub
    stages: StageSink
    supervisor: Supervisor
    pipeline: Pipeline
    lifecycle: Lifecycle
    targets: SpaceTargets
    runner: ModelRunner | None = None
    housekeeper: Housekeeper | None = None  # `spaces gc` and the disk budget's automatic pass

    async def start(self) -> None:
        """Supervisor, then the runner (apps call it as they start), then every space that should run."""
        self.logs.bind_loop(asyncio.get_running_loop())
        await self.supervisor.start()
        if self.runner is not None:
            await self.runner.start()
        await self.lifecycle.restore()
        if self.settings.examples_dir is not None:
            await self.pipeline.deploy_examples(self.settings.examples_dir)
        if self.housekeeper is not None:
            await self.housekeeper.start()

    async def stop(self) -> None:
        """Builds and apps first (they may still call the runner), then the runner; open streams end."""
        self.hub.close()
        if self.housekeeper is not None:
            await self.housekeeper.stop()
        await self.lifecycle.shutdown()
        if self.runner is not None:
            await self.runner.stop()
