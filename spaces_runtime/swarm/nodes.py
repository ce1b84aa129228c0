"""The swarm's nodes as `spaces nodes` shows them, draining one without a failed request, and GPU labels.

Draining a node with ``availability=drain`` alone stops its tasks first and starts their replacements elsewhere
afterwards: a space with one replica would be down meanwhile. So each of the platform's services with a task
there first gets a placement constraint ``node.hostname!=NAME``, which is an ordinary rolling update (start-first:
the new task elsewhere passes its health check before the old one is told to stop); only once those are through
is the node set to drain, which then finds nothing of ours left to stop. ``activate`` lifts both.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import docker
import docker.errors

from spaces_runtime.errors import NotFoundError
from spaces_runtime.supervisor.docker import PLATFORM_LABEL, SPACE_LABEL
from spaces_runtime.supervisor.swarm import GPU_LABEL

_GPU_KINDS = ("gpu", "nvidia-gpu", "nvidia.com/gpu")
DRAIN_WAIT_S = 900.0  # the rolling updates of every app on the node; a slow start counts its startup time
POLL_S = 1.0


@dataclass(frozen=True)
class NodeView:
    name: str
    role: str  # manager | worker
    state: str  # ready | down | unknown
    availability: str  # active | pause | drain
    address: str
    cpus: float
    memory_bytes: int
    gpus: int
    apps: list[str]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def gpus_of(node: dict[str, Any]) -> int:
    """GPUs the node's engine advertises (daemon.json ``node-generic-resources``, e.g. NVIDIA-GPU=UUID) (pure)."""
    resources = node.get("Description", {}).get("Resources", {}).get("GenericResources") or []
    count = 0
    for resource in resources:
        discrete = resource.get("DiscreteResourceSpec") or {}
        named = resource.get("NamedResourceSpec") or {}
        kind = str(discrete.get("Kind") or named.get("Kind") or "").lower()
        if kind in _GPU_KINDS:
            count += int(discrete.get("Value") or 0) if discrete else 1
    return count


def node_view(node: dict[str, Any], apps: list[str]) -> NodeView:
    """One node of ``docker node inspect``, with the spaces that have a running task there (pure)."""
    resources = node.get("Description", {}).get("Resources", {})
    return NodeView(name=node.get("Description", {}).get("Hostname", node.get("ID", "")),
                    role=node.get("Spec", {}).get("Role", ""), state=node.get("Status", {}).get("State", ""),
                    availability=node.get("Spec", {}).get("Availability", ""),
                    address=node.get("Status", {}).get("Addr", ""), cpus=int(resources.get("NanoCPUs") or 0) / 1e9,
                    memory_bytes=int(resources.get("MemoryBytes") or 0), gpus=gpus_of(node), apps=sorted(apps))


class Nodes:
    def __init__(self, client: docker.DockerClient, platform: str) -> None:
        self.client = client
        self.platform = platform

    def views(self) -> list[NodeView]:
        apps: dict[str, set[str]] = {}
        for service in self._services():
            space = service.attrs["Spec"].get("Labels", {}).get(SPACE_LABEL, "")
            for task in service.tasks(filters={"desired-state": "running"}):
                apps.setdefault(task.get("NodeID", ""), set()).add(space)
        return [node_view(n.attrs, list(apps.get(n.id, ()))) for n in self.client.nodes.list()]

    def label_gpus(self) -> None:
        """Each node's GPU count as a node label, which GPU tiers' placement constraints ask for."""
        for node in self.client.nodes.list():
            spec = node.attrs["Spec"]
            count = str(gpus_of(node.attrs))
            if spec.get("Labels", {}).get(GPU_LABEL) != count:
                node.update({**spec, "Labels": {**spec.get("Labels", {}), GPU_LABEL: count}})
                node.reload()

    def move_off(self, name: str) -> list[str]:
        """Start moving the platform's tasks off ``name`` (rolling, start-first); the spaces that move."""
        node = self._node(name)
        moved = []
        for service in self._services():
            if self._tasks_on(service, node.id):
                self._constrain(service, f"node.hostname!={name}", add=True)
                moved.append(service.attrs["Spec"].get("Labels", {}).get(SPACE_LABEL, service.name))
        return sorted(moved)

    def finish_drain(self, name: str, timeout_s: float = DRAIN_WAIT_S) -> None:
        """Once no task of ours runs on ``name`` any more (the rolling updates are through), or ``timeout_s``
        passed, drain it. Draining earlier would stop a task before its replacement passed its health check."""
        node = self._node(name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(self._tasks_on(s, node.id) for s in self._services()):
            time.sleep(POLL_S)
        self._availability(node, "drain")

    def activate(self, name: str) -> None:
        node = self._node(name)
        self._availability(node, "active")
        for service in self._services():
            self._constrain(service, f"node.hostname!={name}", add=False)

    # --- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _tasks_on(service: Any, node_id: str) -> list[dict[str, Any]]:
        return [t for t in service.tasks(filters={"desired-state": "running"}) if t.get("NodeID") == node_id]

    def _services(self) -> list[Any]:
        return list(self.client.services.list(filters={"label": f"{PLATFORM_LABEL}={self.platform}"}))

    def _node(self, name: str) -> Any:
        for node in self.client.nodes.list():
            if name in (node.attrs["Description"].get("Hostname"), node.id):
                return node
        names = ", ".join(n.attrs["Description"].get("Hostname", n.id) for n in self.client.nodes.list())
        raise NotFoundError(f"the swarm has no node '{name}'", hint=f"its nodes: {names}")

    def _availability(self, node: Any, availability: str) -> None:
        node.reload()
        node.update({**node.attrs["Spec"], "Availability": availability})

    def _constrain(self, service: Any, constraint: str, *, add: bool) -> None:
        """Add or remove one placement constraint, keeping the rest of the service's spec as it is."""
        service.reload()
        spec = service.attrs["Spec"]
        template = spec["TaskTemplate"]
        placement = template.setdefault("Placement", {})
        constraints = [c for c in placement.get("Constraints") or [] if c != constraint]
        if add:
            constraints.append(constraint)
        if constraints == (placement.get("Constraints") or []):
            return
        placement["Constraints"] = constraints
        self.client.api.update_service(service.id, service.version, task_template=template, name=spec["Name"],
                                       labels=spec.get("Labels"), mode=spec.get("Mode"),
                                       update_config=spec.get("UpdateConfig"), endpoint_spec=spec.get("EndpointSpec"),
                                       rollback_config=spec.get("RollbackConfig"))
