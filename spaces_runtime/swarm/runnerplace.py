"""Where the swarm's model runners go and which apps must land beside one (issue 14 item 4; pure decisions).

A runner is node-local (apps reach it through a Unix socket in a per-node volume), so an app that calls runner
models must run on a node that has one. Runner nodes are the nodes with GPUs; when no node has a GPU, the
manager alone, so a CPU-only swarm still serves runner models. The node label ``RUNNER_LABEL`` marks them and is
what both the runner's global service and the apps that need a runner are constrained to.

Which apps need a runner is ``runner.catalog.uses_runner``; the service itself is ``swarm.runners``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not at run time: swarm.nodes imports the swarm backend, which imports this module
    from spaces_runtime.swarm.nodes import NodeView

RUNNER_LABEL = "spaces-runtime.runner"  # a node label: "1" on the nodes the runner's global service runs on
RUNNER_CONSTRAINT = f"node.labels.{RUNNER_LABEL}==1"
RUNNER_MOUNT = "/run/spaces-runner"  # the node's runner volume in a task, holding runner.sock (apps: read-only)
SOCKET = f"{RUNNER_MOUNT}/runner.sock"


def socket_volume(platform: str) -> str:
    """The node-local volume the runner keeps its socket in."""
    return f"spaces-{platform}-runner"


def runner_nodes(nodes: list[NodeView]) -> set[str]:
    """The names of the nodes a runner belongs on (``spaces nodes``' view of them): every ready GPU node, else
    every ready manager."""
    ready = [n for n in nodes if n.state == "ready"]
    gpu = {n.name for n in ready if n.gpus > 0}
    return gpu or {n.name for n in ready if n.role == "manager"}


def app_constraints(*, needs_runner: bool, has_runner_nodes: bool) -> list[str]:
    """An app that calls the runner runs only where one is; other apps run anywhere (and get no runner env)."""
    return [RUNNER_CONSTRAINT] if needs_runner and has_runner_nodes else []


RUNNER_ENV = ("SPACES_RUNNER_URL", "SPACES_RUNNER_TOKEN")
TOKEN_KEY = "SPACES_RUNNER_TOKEN"  # a Docker secret on swarm, like the space's own secrets


def without_runner(env: dict[str, str]) -> dict[str, str]:
    """An app's env with no runner to reach: no address or token (the kit stays: ``import spaces`` works) (pure)."""
    return {k: v for k, v in env.items() if k not in RUNNER_ENV}
