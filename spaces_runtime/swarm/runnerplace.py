"""Where the swarm's model runners go and which apps must land beside one (issue 14 item 4; pure decisions).

A runner is node-local (apps reach it through a Unix socket in a per-node volume), so an app that calls runner
models must run on a node that has one. Runner nodes are the nodes with GPUs; when no node has a GPU, the
manager alone, so a CPU-only swarm still serves runner models. The node label ``RUNNER_LABEL`` marks them and is
what both the runner's global service and the apps that need a runner are constrained to.

Not wired yet: the runner service itself, its socket volume and the apps' constraint are the next step.
"""

from __future__ import annotations

from spaces_runtime.swarm.nodes import NodeView

RUNNER_LABEL = "spaces-runtime.runner"  # a node label: "1" on the nodes the runner's global service runs on
RUNNER_CONSTRAINT = f"node.labels.{RUNNER_LABEL}==1"


def runner_nodes(nodes: list[NodeView]) -> set[str]:
    """The names of the nodes a runner belongs on (``spaces nodes``' view of them): every ready GPU node, else
    every ready manager."""
    ready = [n for n in nodes if n.state == "ready"]
    gpu = {n.name for n in ready if n.gpus > 0}
    return gpu or {n.name for n in ready if n.role == "manager"}


def uses_runner(models: list[str], runner_models: list[str], catalog: set[str]) -> bool:
    """Whether an app calls the runner: its README's ``runner_models:``, or a ``models:`` entry the runner serves."""
    return bool(runner_models) or any(model in catalog for model in models)


def app_constraints(*, needs_runner: bool, has_runner_nodes: bool) -> list[str]:
    """An app that calls the runner runs only where one is; other apps run anywhere (and get no runner env)."""
    return [RUNNER_CONSTRAINT] if needs_runner and has_runner_nodes else []
