"""What a runtime backend must do, whatever runs the app (a process group, a container, later a swarm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spaces_runtime.logs import LogSink


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a backend needs to start one app; built by the deployer from the AppSpec and build result."""

    space_id: str  # "owner/name"
    sdk: str  # gradio | streamlit | docker
    app_dir: Path  # the app's code
    app_file: str  # relative to app_dir
    base_path: str  # "/spaces/owner/name": the path prefix the gateway serves the app under
    env: dict[str, str] = field(default_factory=dict)  # HF's SPACE_* vars, runner address, user variables
    env_dir: Path | None = None  # process backend: the virtualenv to run in
    image: str | None = None  # docker backend: the image to run
    app_port: int = 7860  # port inside the container (docker); ignored by the process backend
    startup_timeout_s: float = 1800.0
    hardware: str = "cpu-basic"  # a tier of supervisor.tiers.TIERS (deploy.runchoice chose it)
    replicas: int = 1  # instances the swarm backend runs; the others run one
    secret_keys: frozenset[str] = frozenset()  # which of env are the space's secrets (swarm: Docker secrets)
    sdk_version: str | None = None  # README sdk_version; None: the platform default (newest era, sdk_eras)
    uses_runner: bool = False  # its README names runner models (runner.catalog.uses_runner): swarm places it by one


@dataclass
class Instance:
    """A started app as the supervisor sees it."""

    space_id: str
    upstream: str  # base URL the gateway proxies to, e.g. "http://127.0.0.1:41234"
    backend_ref: str  # pid or container id
    started_at: float


@dataclass(frozen=True)
class ExitInfo:
    code: int | None
    reason: str  # "exited with code 1", "killed by signal 9", "out of memory (limit 2g)"
    oom: bool = False


class Backend(Protocol):
    name: str

    async def launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        """Start the app; return at once (readiness is probed by the supervisor)."""
        ...

    async def exited(self, instance: Instance) -> ExitInfo | None:
        """None while the app is alive; how it ended otherwise."""
        ...

    async def stop(self, instance: Instance, grace_s: float) -> None:
        """Graceful stop with a deadline, then force; leaves no orphans."""
        ...

    async def adopt(self) -> list[Instance]:
        """Apps that outlived a platform restart and can be taken over (containers); [] for processes, whose
        leftovers it ends instead. The caller stops those it no longer wants (orphans) with ``stop``."""
        ...

    def attach_logs(self, instance: Instance, log: LogSink) -> None:
        """Follow an adopted app's output from now on into ``log`` (the old platform's log pump died with it)."""
        ...

    async def remove_data(self, space_id: str) -> None:
        """A deleted space's persistent /data goes with it, so it never reappears in a new space of that name."""
        ...

    def held(self, space_id: str) -> str | None:
        """Why the backend keeps the app from answering on purpose right now (the swarm: its /data is being
        moved to another node), or None. Unanswered health checks meanwhile are not a hang."""
        ...
