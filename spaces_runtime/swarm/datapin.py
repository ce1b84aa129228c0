"""Which node holds a single-replica space's /data, and the placement that keeps its task there (pure decisions).

A swarm volume is local to a node: a task that swarm moves elsewhere (a drain, a reschedule) would find an empty
/data on its new node. So a space with one replica is pinned: its service carries ``node.id==ID`` and the label
``DATA_NODE_LABEL`` (what `spaces nodes` shows and a redeploy keeps), and the platform remembers the pin beyond
the service (``swarm.pinning.PinBook``: a paused or sleeping space has no service, its data still has a node).

The node is chosen once, at the first create: a ready, active node with the fewest of the platform's tasks that
satisfies the space's other constraints (GPU tier, model runner). A service made before pinning existed is pinned
to the node its running task is on, which is where its data is. Spaces with several replicas stay unpinned: each
task's /data is its own node's (README: Docker Swarm).

A pinned node that is down is not replaced silently: the launch fails with ``NodeUnavailableError`` and
``waiting_message`` (the space's status and run log), which says how to get the data back or to start elsewhere
with an empty /data; the supervisor tries again by itself, so the space runs again once its node is back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spaces_runtime.errors import BackendError, NodeUnavailableError

DATA_NODE_LABEL = "spaces-runtime.data-node"  # a service label: the id of the node that holds its /data
_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*$")


class ConstraintError(BackendError):
    """A placement constraint this evaluator does not read."""


@dataclass(frozen=True)
class Candidate:
    """A swarm node as placement sees it."""

    id: str
    name: str
    state: str = "ready"  # ready | down | unknown
    availability: str = "active"  # active | pause | drain
    role: str = "worker"
    labels: Mapping[str, str] = field(default_factory=dict)
    tasks: int = 0  # the platform's running tasks there

    @property
    def usable(self) -> bool:
        return self.state == "ready" and self.availability == "active"


@dataclass(frozen=True)
class Decision:
    node_id: str | None  # None: not pinned (several replicas)
    note: str | None = None  # what the run log should say about it


def candidate(node: Mapping[str, Any], tasks: int = 0) -> Candidate:
    """One node of ``docker node inspect`` (pure)."""
    spec = node.get("Spec") or {}
    return Candidate(id=str(node.get("ID", "")), name=str((node.get("Description") or {}).get("Hostname", "")),
                     state=str((node.get("Status") or {}).get("State", "")),
                     availability=str(spec.get("Availability", "")), role=str(spec.get("Role", "")),
                     labels=dict(spec.get("Labels") or {}), tasks=tasks)


def parse(constraint: str) -> tuple[str, str, str]:
    """``node.labels.K==V`` → ("node.labels.K", "==", "V"); anything else raises with what it found."""
    match = _CONSTRAINT.match(constraint)
    if match is None:
        raise ConstraintError(f"placement constraint '{constraint}' is neither KEY==VALUE nor KEY!=VALUE")
    key, op, value = match.groups()
    return key, op, value


def satisfies(node: Candidate, constraints: Iterable[str]) -> bool:
    """Whether swarm could place a task with ``constraints`` on ``node``: node.id, node.hostname, node.role and
    node.labels.K, each with == or !=. A label the node lacks equals nothing (so ``!=`` holds), as in swarm."""
    known = {"node.id": node.id, "node.hostname": node.name, "node.role": node.role,
             **{f"node.labels.{k}": v for k, v in node.labels.items()}}
    for constraint in constraints:
        key, op, value = parse(constraint)
        if not (key in ("node.id", "node.hostname", "node.role") or key.startswith("node.labels.")):
            raise ConstraintError(f"placement constraint '{constraint}': only node.id, node.hostname, node.role "
                                  "and node.labels.KEY are understood when choosing a node for /data")
        if (known.get(key) == value) != (op == "=="):
            return False
    return True


def choose(nodes: Iterable[Candidate], constraints: Iterable[str], *, exclude: Iterable[str] = ()) -> Candidate | None:
    """The usable node with the fewest of our tasks that satisfies ``constraints`` (ties: by name), or None."""
    wanted, skipped = list(constraints), set(exclude)
    fits = [n for n in nodes if n.usable and n.id not in skipped and satisfies(n, wanted)]
    return min(fits, key=lambda n: (n.tasks, n.name)) if fits else None


def without_pin(constraints: Iterable[str]) -> list[str]:
    """The constraints minus any ``node.id==`` pin (the rest is what the space itself asks for)."""
    return [c for c in constraints if not re.match(r"^\s*node\.id\s*==", c)]


def decide(*, replicas: int, remembered: str | None, running_on: str | None, nodes: list[Candidate],
           constraints: list[str]) -> Decision:
    """Where the space's /data lives from now on: the remembered pin, else its running task's node (a service
    made before pinning), else a new choice. Raises when nothing fits, naming the nodes and the constraints."""
    if replicas != 1:
        return Decision(None)
    known = {n.id: n for n in nodes}
    note = None
    if remembered and remembered in known:
        return Decision(remembered)
    if remembered:
        note = (f"warning: node {remembered}, which held this space's /data, has left the swarm; its data went "
                "with it, and the app starts with an empty /data on another node")
    elif running_on and running_on in known:
        return Decision(running_on, f"/data pinned to node {known[running_on].name}, where its task runs")
    wanted = without_pin(constraints)
    chosen = choose(nodes, wanted)
    if chosen is None:
        listed = ", ".join(f"{n.name} ({n.state}, {n.availability})" for n in nodes) or "none"
        raise BackendError(f"no ready, active node satisfies {wanted or 'the space'} to hold its /data "
                           f"(nodes: {listed})", hint="`spaces nodes` lists them; activate one or add one")
    return Decision(chosen.id, note or f"/data pinned to node {chosen.name} (the app runs there)")


def problem(node: Candidate, space_id: str, constraints: list[str]) -> BackendError | None:
    """Why a task pinned to ``node`` cannot start there now (its message is the space's status), or None: a
    ``NodeUnavailableError`` while the node is down or drained (that passes), a ``BackendError`` otherwise."""
    if node.state != "ready":
        return NodeUnavailableError(waiting_message(space_id, node.name, f"is {node.state or 'unknown'}"))
    if node.availability != "active":
        return NodeUnavailableError(waiting_message(space_id, node.name, f"is set to {node.availability}"))
    if not satisfies(node, without_pin(constraints)):
        return BackendError(f"{space_id}: node {node.name} holds its /data but does not satisfy "
                            f"{without_pin(constraints)}; `spaces nodes drain {node.name}` moves the data to a "
                            "node that does")
    return None


def waiting_message(space_id: str, node: str, state: str) -> str:
    return (f"{space_id}: waiting for node {node}, which holds its /data and {state}; it starts again by itself "
            f"once the node is back, or `spaces nodes drain {node} --empty-data` starts it elsewhere with an "
            "empty /data")


def pinned_config(config: dict[str, Any], node_id: str | None) -> dict[str, Any]:
    """Service keyword arguments (``swarm.service.service_config``) with the pin's constraint and label; the
    same arguments without any pin when ``node_id`` is None. ``labels`` is copied: the config shares it."""
    constraints = without_pin(config.get("constraints") or [])
    labels = {k: v for k, v in (config.get("labels") or {}).items() if k != DATA_NODE_LABEL}
    if node_id is not None:
        constraints.append(f"node.id=={node_id}")
        labels[DATA_NODE_LABEL] = node_id
    return {**config, "constraints": constraints, "labels": labels}


def pinned_to(service_spec: Mapping[str, Any]) -> str | None:
    """The node id a service's spec pins its /data to (its label), or None."""
    return (service_spec.get("Labels") or {}).get(DATA_NODE_LABEL) or None


def repinned_spec(template: dict[str, Any], labels: Mapping[str, str], node_id: str) -> tuple[dict[str, Any],
                                                                                             dict[str, str]]:
    """A service's TaskTemplate and Labels moved to ``node_id`` (for a low-level update; pure)."""
    placement = dict(template.get("Placement") or {})
    placement["Constraints"] = [*without_pin(placement.get("Constraints") or []), f"node.id=={node_id}"]
    return {**template, "Placement": placement}, {**labels, DATA_NODE_LABEL: node_id}
