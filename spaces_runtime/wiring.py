"""Builds the platform's components from Settings and hands each its collaborators (used by `spaces serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from spaces_runtime.config import Settings
from spaces_runtime.deployer import Deployer, EnvironmentBuilder, VenvEnvironmentBuilder
from spaces_runtime.events import EventHub
from spaces_runtime.logs import LogBook
from spaces_runtime.server.api import Platform
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store
from spaces_runtime.supervisor.backend import Backend
from spaces_runtime.supervisor.loop import Supervisor
from spaces_runtime.supervisor.probes import LivenessPolicy

log = logging.getLogger("spaces_runtime")


def ensure_token(settings: Settings) -> str | None:
    """Listening beyond loopback, writing endpoints need a token: generated once into the data dir."""
    if settings.token or not settings.listens_beyond_loopback:
        return settings.token
    path = settings.data_dir / "token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def make_backend(settings: Settings) -> tuple[Backend, EnvironmentBuilder]:
    if settings.backend == "docker":
        from spaces_runtime.docker_wiring import docker_parts

        return docker_parts(settings)
    from spaces_runtime.supervisor.process import ProcessBackend

    return ProcessBackend(settings), VenvEnvironmentBuilder(settings)


def make_runner(settings: Settings) -> tuple[Any, Callable[[str], dict[str, str]] | None]:
    """The model runner and, per app, the env vars that point it at the runner; (None, None) when the runner is
    disabled or torch is missing (apps then run without it, and say so when they call it)."""
    if not settings.runner_enabled:
        return None, None
    if importlib.util.find_spec("torch") is None:
        log.warning("model runner disabled: torch is not installed (install the 'runner' extra)")
        return None, None
    from spaces_runtime.runner.appkit import appkit_env
    from spaces_runtime.runner.server import RunnerService

    return RunnerService(settings), lambda space_id: appkit_env(settings, space_id)


def model_preparer(runner: Any) -> Callable[[Any, Path], Awaitable[list[str]]]:
    """At deploy: register the model files the README's `runner_models:` declares (uploaded from the folder, so
    no app code runs in the runner), then load every runner model the app names. Returns what got loaded."""
    from spaces_runtime.client import Runner

    def register(model: dict[str, Any], app_dir: Path) -> str:
        client = Runner(runner.url, token=runner.admin_token)
        options = {k: model[k] for k in ("task", "input_shape", "input_dtype", "labels") if k in model}
        client.register(model["name"], app_dir / model["file"], **options)
        return str(model["name"])

    async def prepare(spec: Any, app_dir: Path) -> list[str]:
        declared = [await asyncio.to_thread(register, m, app_dir) for m in spec.runner_models]
        return list(await runner.preload([*spec.models, *declared]))

    return prepare


def build_platform(settings: Settings) -> Platform:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.token = ensure_token(settings)
    store = Store(settings.db_path)
    logs = LogBook(settings.data_dir / "logs", settings.log_max_bytes)
    hub = EventHub()
    backend, environments = make_backend(settings)
    runner, runner_env = make_runner(settings)
    deployer: Deployer | None = None

    def on_stage(space_id: str, stage: Stage, reason: str, error: str | None) -> None:
        assert deployer is not None
        deployer.set_stage(space_id, stage, reason, error)

    liveness = LivenessPolicy(interval_s=settings.liveness_interval_s, timeout_s=settings.liveness_timeout_s,
                              failures=settings.liveness_failures)
    supervisor = Supervisor(backend, logs, settings, on_stage, liveness=liveness)
    deployer = Deployer(settings, store, logs, supervisor, hub, environments, app_env=runner_env,
                        prepare_models=model_preparer(runner) if runner is not None else None)
    return Platform(settings, store, logs, deployer, hub, runner=runner)


def run_server(settings: Settings) -> None:
    from spaces_runtime.server.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # every readiness probe would be a line
    platform = build_platform(settings)
    if settings.token and settings.listens_beyond_loopback:
        log.info("writing endpoints need the token in %s", Path(settings.data_dir) / "token")
    log.info("gallery at http://%s/  (apps at /spaces/OWNER/NAME/ and http://OWNER-NAME.%s/)",
             settings.public_link_host, settings.public_link_host)
    config = uvicorn.Config(create_app(platform), host=settings.host, port=settings.port, log_level="info",
                            proxy_headers=False, ws_max_size=64 * 1024 * 1024, access_log=False,
                            timeout_graceful_shutdown=int(settings.stop_grace_s) + 5)
    _Server(config, platform).run()


class _Server(uvicorn.Server):
    """uvicorn waits for open responses before it shuts down; event and log streams (an open gallery tab) never
    end by themselves, so the first exit signal ends them."""

    def __init__(self, config: uvicorn.Config, platform: Platform) -> None:
        super().__init__(config)
        self.platform = platform

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # no loop yet: nothing is streaming
            asyncio.get_running_loop().call_soon_threadsafe(self.platform.hub.close)
        super().handle_exit(sig, frame)
