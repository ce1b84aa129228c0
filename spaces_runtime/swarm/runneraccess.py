"""What a swarm task gets to reach the platform's model runner and the app-side kit (``SwarmBackend._launch``).

Every app gets the kit as Docker configs (``swarm.kit``), as on the other backends. An app that names runner
models also reaches the runner of its node (``swarm.runners``): the node's runner volume read-only, its token as
a Docker secret, and a place on a runner node. Others run anywhere, without the runner's address and token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from docker.types import ConfigReference, Mount

from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.docker import image_pythonpath, runner_mounts
from spaces_runtime.swarm.kit import KIT_MOUNT, KitConfigs
from spaces_runtime.swarm.runnerplace import (
    RUNNER_CONSTRAINT,
    RUNNER_MOUNT,
    SOCKET,
    TOKEN_KEY,
    socket_volume,
    without_runner,
)


@dataclass
class RunnerAccess:
    """What ``runner_access`` adds to a task: the spec with its runner env, mounts, constraints, kit configs."""

    spec: LaunchSpec
    mounts: list[Mount] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    configs: list[ConfigReference] = field(default_factory=list)


def runner_access(spec: LaunchSpec, log: LogSink, *, kit: KitConfigs, platform: str, with_runner: bool,
                  image_config: Callable[[], dict[str, Any]]) -> RunnerAccess:
    """``with_runner``: the swarm's runner service is on; ``image_config``: the image's Docker config (its
    PYTHONPATH decides where the kit goes), read only when the runner is on."""
    if not spec.env.get("SPACES_RUNNER_URL", "").startswith("unix://"):
        return RunnerAccess(spec)  # the runner is off: no kit either, as on the docker backend
    env, _ = runner_mounts(spec.env, kit.kit, image_pythonpath(image_config()), kit_mount=KIT_MOUNT)
    configs = kit.references()
    if not (with_runner and spec.uses_runner):
        if with_runner:
            log("the app names no runner model (README models: or runner_models:), so it runs on any node, "
                "without the model runner")
        return RunnerAccess(replace(spec, env=without_runner(env)), configs=configs)
    # runner_mounts pointed the URL at the docker backend's bind mount; on the swarm the socket is in the
    # node's runner volume, mounted elsewhere
    env["SPACES_RUNNER_URL"] = f"unix://{SOCKET}"
    log(f"model runner: the runner of the task's node, through {SOCKET} (a runner node: {RUNNER_CONSTRAINT})")
    mount = Mount(RUNNER_MOUNT, socket_volume(platform), type="volume", read_only=True)
    return RunnerAccess(replace(spec, env=env, secret_keys=spec.secret_keys | {TOKEN_KEY}), [mount],
                        [RUNNER_CONSTRAINT], configs)
