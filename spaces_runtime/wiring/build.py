"""Builds the platform's components from Settings, in order: store, logs and events; the stage sink; the backend
and environment builder; the runner; the supervisor; the deploy pipeline, lifecycle and the gateway's view."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.spec import AppSpec
from spaces_runtime.auth.accounts import Accounts
from spaces_runtime.auth.secrets import SpaceSecrets, check_key_place
from spaces_runtime.config import Settings
from spaces_runtime.deploy.environments import EnvironmentBuilder, ImageEnvironmentBuilder, VenvEnvironmentBuilder
from spaces_runtime.deploy.lifecycle import Lifecycle
from spaces_runtime.deploy.pipeline import AppEnv, ModelPreparer, Pipeline
from spaces_runtime.deploy.stagesink import StageSink
from spaces_runtime.deploy.targets import SpaceTargets
from spaces_runtime.events import EventHub
from spaces_runtime.housekeeping.collect import Collector, Housekeeper
from spaces_runtime.hub.commits import SpaceCommits
from spaces_runtime.logs import LogBook
from spaces_runtime.store import Store
from spaces_runtime.supervisor.backend import Backend
from spaces_runtime.supervisor.loop import Supervisor
from spaces_runtime.supervisor.probes import LivenessPolicy
from spaces_runtime.wiring.admin import ensure_admin, make_authenticator
from spaces_runtime.wiring.platform import ModelRunner, Platform
from spaces_runtime.wiring.space_env import SpaceEnv

if TYPE_CHECKING:
    from spaces_runtime.runner.server import RunnerService

log = logging.getLogger("spaces_runtime")


def make_backend(settings: Settings) -> tuple[Backend, EnvironmentBuilder]:
    if settings.backend == "swarm":
        from spaces_runtime.wiring.swarm import swarm_parts

        return swarm_parts(settings)
    if settings.backend == "docker":
        from spaces_runtime.wiring.docker import docker_parts

        return docker_parts(settings)
    from spaces_runtime.supervisor.process import ProcessBackend

    backend = ProcessBackend(settings)
    return backend, VenvEnvironmentBuilder(settings, sandboxed=lambda: backend.sandbox() is not None)


def make_runner(settings: Settings, backend: Backend) -> tuple[ModelRunner | None, AppEnv | None,
                                                            ModelPreparer | None]:
    """The model runner, per app the env vars that point it at the runner, and the deploy's model preparation;
    all None when the runner is disabled or torch is missing (apps then run without it, and say so when they
    call it). On swarm, the runners of the swarm's nodes (``swarm.runners``)."""
    if not settings.runner_enabled:
        return None, None, None
    from spaces_runtime.appkit.install import appkit_env

    def env(space_id: str) -> dict[str, str]:
        return appkit_env(settings, space_id)

    if settings.backend == "swarm":
        from spaces_runtime.supervisor.swarm import SwarmBackend
        from spaces_runtime.wiring.swarm import swarm_runners

        assert isinstance(backend, SwarmBackend)
        fleet = swarm_runners(settings, backend)
        return fleet, env, fleet.prepare
    if importlib.util.find_spec("torch") is None:
        log.warning("model runner disabled: torch is not installed (install the 'runner' extra)")
        return None, None, None
    from spaces_runtime.runner.server import RunnerService

    runner = RunnerService(settings)
    return runner, env, model_preparer(runner)


def model_preparer(runner: RunnerService) -> ModelPreparer:
    """At deploy: register the model files the README's `runner_models:` declares (uploaded from the folder, so
    no app code runs in the runner), then load every runner model the app names. Returns what got loaded."""
    from spaces_runtime.client import Runner

    def register(model: dict[str, Any], app_dir: Path) -> str:
        client = Runner(runner.url, token=runner.admin_token)
        options = {k: model[k] for k in ("task", "input_shape", "input_dtype", "labels") if k in model}
        client.register(model["name"], app_dir / model["file"], **options)
        return str(model["name"])

    async def prepare(spec: AppSpec, app_dir: Path) -> list[str]:
        declared = [await asyncio.to_thread(register, m, app_dir) for m in spec.runner_models]
        return list(await runner.preload([*spec.models, *declared]))

    return prepare


def make_housekeeper(settings: Settings, store: Store, backend: Backend, commits: SpaceCommits) -> Housekeeper:
    """`spaces gc` and the disk budget: environments always; images and build cache with the docker backend;
    LFS objects no commit references (`spaces gc` only)."""
    images = None
    if settings.backend == "docker":
        from spaces_runtime.housekeeping.images import DockerImages
        from spaces_runtime.supervisor.docker import DockerBackend

        assert isinstance(backend, DockerBackend)
        images = DockerImages(backend.client)
    return Housekeeper(Collector(settings, store, images, commits), settings.disk_budget_bytes,
                       settings.gc_interval_s)


def build_platform(settings: Settings) -> Platform:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_path)
    accounts = Accounts(settings.db_path)
    ensure_admin(settings, accounts)
    auth = make_authenticator(settings, accounts, store)
    secrets = SpaceSecrets(settings.db_path, check_key_place(settings.secrets_key_path, settings.apps_dir,
                                                             settings.envs_dir))
    logs = LogBook(settings.data_dir / "logs", settings.log_max_bytes, masker=secrets.mask)
    hub = EventHub()
    stages = StageSink(store, hub)
    backend, environments = make_backend(settings)
    runner, runner_env, prepare_models = make_runner(settings, backend)
    space_env = SpaceEnv(secrets, settings.apps_dir, runner_env)
    if isinstance(environments, ImageEnvironmentBuilder):  # the space's own Dockerfile gets its secrets
        environments.images.inputs_of = space_env.build_inputs
    liveness = LivenessPolicy(interval_s=settings.liveness_interval_s, timeout_s=settings.liveness_timeout_s,
                              failures=settings.liveness_failures)
    supervisor = Supervisor(backend, logs, settings, stages, liveness=liveness)
    commits = SpaceCommits(settings, store, stages)  # every deploy a commit of the space's git repository
    pipeline = Pipeline(settings, store, logs, supervisor, stages, hub, environments, app_env=space_env,
                        commits=commits, secret_keys=space_env.secret_keys,
                        prepare_models=prepare_models)
    lifecycle = Lifecycle(settings, store, logs, supervisor, stages, hub, pipeline)
    lifecycle.on_delete.append(secrets.drop_space)  # a new space of the same name starts without them
    targets = SpaceTargets(store, supervisor, lifecycle, auth,
                           replicas=getattr(backend, "task_upstreams", None))  # swarm: every healthy task
    return Platform(settings, store, accounts, auth, secrets, logs, hub, stages, supervisor, pipeline, lifecycle,
                    targets, runner=runner,
                    housekeeper=make_housekeeper(settings, store, backend, commits))
