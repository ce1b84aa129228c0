"""The swarm backend's parts, for `spaces serve --backend swarm` on a swarm manager: the image builder (the docker
backend's, on the manager's engine), the platform's registry, and the backend that runs services."""

from __future__ import annotations

import atexit
import os

from builder.docker import connect
from builder.docker.runner import RUNNER_REPO, build_runner_image
from spaces_runtime.config import Settings
from spaces_runtime.deploy.environments import ImageEnvironmentBuilder
from spaces_runtime.errors import BackendError
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.swarm import SwarmBackend
from spaces_runtime.swarm.nodes import Nodes
from spaces_runtime.swarm.registry import Registry
from spaces_runtime.swarm.runners import RunnerFleet
from spaces_runtime.wiring.docker import image_builder


def registry_address(settings: Settings, manager_addr: str) -> str:
    return settings.swarm_registry or f"{manager_addr}:{settings.swarm_registry_port}"


def swarm_parts(settings: Settings) -> tuple[SwarmBackend, ImageEnvironmentBuilder]:
    client = connect(os.environ)
    swarm = client.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise BackendError("the swarm backend runs on a swarm manager, and this engine is not one "
                           f"(swarm state: {swarm.get('LocalNodeState') or 'inactive'})",
                           hint="docker swarm init --advertise-addr ADDRESS, then join the workers")
    registry = Registry(settings.swarm_registry_binary, settings.data_dir / "registry",
                        registry_address(settings, str(swarm.get("NodeAddr") or "127.0.0.1")))
    registry.start()
    # the platform's exit stops it; after a kill -9 the next start finds it answering and keeps it
    atexit.register(registry.stop)
    backend = SwarmBackend(settings, client, registry.address)
    Nodes(client, backend.platform).label_gpus()  # GPU tiers are placed on nodes whose engines report GPUs
    images = image_builder(settings)
    (settings.data_dir / "docker").mkdir(parents=True, exist_ok=True)  # build contexts; the base may be present
    return backend, ImageEnvironmentBuilder(images)


def swarm_runners(settings: Settings, backend: SwarmBackend) -> RunnerFleet:
    """The runner as a global service on the runner nodes; apps that name runner models are placed beside one."""
    def build(log: LogSink) -> str:
        return build_runner_image(image_builder(settings), log).tag

    def push(local: str, log: LogSink) -> str:
        return backend.push(local, log, repository=RUNNER_REPO)

    backend.with_runner = True
    return RunnerFleet(settings, backend.client, backend.platform, push=push, build_image=build)
