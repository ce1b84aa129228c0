"""The swarm's nodes as `spaces nodes` shows them, draining one without a failed request, and GPU labels.

Draining a node with ``availability=drain`` alone stops its tasks first and starts their replacements elsewhere
afterwards: a space with one replica would be down meanwhile. So each of the platform's unpinned services with a
task there first gets a placement constraint ``node.hostname!=NAME``, which is an ordinary rolling update
(start-first: the new task elsewhere passes its health check before the old one is told to stop); only once those
are through is the node set to drain, which then finds nothing of ours left to stop. ``activate`` lifts both.

A space whose /data is pinned to the node (``swarm.datapin``) moves with its data: its service is scaled to 0 (so
a database in /data is not copied while written), the volume is copied to the chosen node
(``swarm.datamove``), and the service is re-pinned there and scaled back to 1. That is an outage of the stop, the
copy and the app's start; ``--empty-data`` skips the copy (for a node that is down). A move that fails puts the
app back where it was, leaves the node active and says why in its ``drain_error``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import docker
import docker.errors

from spaces_runtime.errors import BackendError, ConflictError, NotFoundError, SpacesError
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, SPACE_LABEL
from spaces_runtime.swarm import datamove, datapin
from spaces_runtime.swarm.pinning import DataPins, Pin
from spaces_runtime.swarm.service import GPU_LABEL

log = logging.getLogger(__name__)
_GPU_KINDS = ("gpu", "nvidia-gpu", "nvidia.com/gpu")
DRAIN_WAIT_S = 900.0  # the rolling updates of every app on the node; a slow start counts its startup time
STOP_WAIT_S = 60.0  # a scaled-down task's stop: its drain (swarm.service.DRAIN_S) and its exit
POLL_S = 1.0
DRAIN_ERROR_LABEL = "spaces-runtime.drain-error"  # a node label: why the last drain stopped short
# task states in which a container may exist on its node and hold the volume ("new"/"pending" never reached one)
_LIVE = frozenset({"assigned", "accepted", "preparing", "ready", "starting", "running"})


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
    data: list[str] = field(default_factory=list)  # the spaces whose /data is pinned here
    drain_error: str = ""  # why the last `spaces nodes drain` of it stopped short

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Moved:
    space_id: str
    target: str  # node name
    stopped_s: float  # from the stop of the app to its service re-pinned and scaled up (the copy included)
    copy_s: float


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


def node_view(node: dict[str, Any], apps: list[str], data: list[str] | None = None) -> NodeView:
    """One node of ``docker node inspect``, with the spaces that have a running task there (pure)."""
    resources = node.get("Description", {}).get("Resources", {})
    spec = node.get("Spec", {})
    return NodeView(name=node.get("Description", {}).get("Hostname", node.get("ID", "")),
                    role=spec.get("Role", ""), state=node.get("Status", {}).get("State", ""),
                    availability=spec.get("Availability", ""),
                    address=node.get("Status", {}).get("Addr", ""), cpus=int(resources.get("NanoCPUs") or 0) / 1e9,
                    memory_bytes=int(resources.get("MemoryBytes") or 0), gpus=gpus_of(node), apps=sorted(apps),
                    data=sorted(data or []), drain_error=(spec.get("Labels") or {}).get(DRAIN_ERROR_LABEL, ""))


class Nodes:
    def __init__(self, client: docker.DockerClient, platform: str, pins: DataPins | None = None) -> None:
        self.client = client
        self.platform = platform
        self.pins = pins

    def views(self) -> list[NodeView]:
        apps: dict[str, set[str]] = {}
        for service in self._services():
            space = service.attrs["Spec"].get("Labels", {}).get(SPACE_LABEL, "")
            for task in service.tasks(filters={"desired-state": "running"}):
                apps.setdefault(task.get("NodeID", ""), set()).add(space)
        data: dict[str, list[str]] = {}
        for space, (node_id, _) in self._pins().items():
            data.setdefault(node_id, []).append(space)
        return [node_view(n.attrs, list(apps.get(n.id, ())), data.get(n.id)) for n in self.client.nodes.list()]

    def label_gpus(self) -> None:
        """Each node's GPU count as a node label, which GPU tiers' placement constraints ask for."""
        for node in self.client.nodes.list():
            spec = node.attrs["Spec"]
            count = str(gpus_of(node.attrs))
            if spec.get("Labels", {}).get(GPU_LABEL) != count:
                node.update({**spec, "Labels": {**spec.get("Labels", {}), GPU_LABEL: count}})
                node.reload()

    def move_off(self, name: str, *, empty_data: bool = False) -> list[str]:
        """Start moving the platform's unpinned tasks off ``name`` (rolling, start-first); the spaces that move,
        the pinned ones included (``finish_drain`` moves those with their data). A node that is down cannot give
        its /data: that needs ``empty_data``, and says so."""
        node = self._node(name)
        self._label(node, DRAIN_ERROR_LABEL, None)
        pinned = {space for space, (node_id, _) in self._pins().items() if node_id == node.id}
        state = node.attrs.get("Status", {}).get("State")
        if pinned and state != "ready" and not empty_data:
            raise ConflictError(f"node {name} is {state}: it holds the /data of {', '.join(sorted(pinned))}, which "
                                "cannot be copied from it",
                                hint=f"bring it back, or `spaces nodes drain {name} --empty-data` to start them "
                                     "elsewhere with an empty /data")
        leaving = [s for s in self._services() if s.attrs["Spec"]["Labels"][SPACE_LABEL] not in pinned
                   and self._tasks_on(s, node.id)]
        self._check_room(node, [service for _, (node_id, service) in self._pins().items() if node_id == node.id]
                         + leaving)
        for service in leaving:
            self._constrain(service, f"node.hostname!={name}", add=True)
        return sorted(pinned | {s.attrs["Spec"]["Labels"][SPACE_LABEL] for s in leaving})

    def _check_room(self, node: Any, services: list[Any]) -> None:
        """Refuse, before anything moves, a drain that would leave a space nowhere to run (a model runner app on
        the only runner node, a GPU app on the only GPU node): its task would wait for good."""
        candidates = self.pins.candidates() if self.pins is not None else [
            datapin.candidate(n.attrs) for n in self.client.nodes.list()]
        stuck = []
        for service in services:
            wanted = _wanted(service)
            if service is not None and datapin.choose(candidates, wanted, exclude={node.id}) is None:
                stuck.append(f"{service.attrs['Spec']['Labels'][SPACE_LABEL]} (needs {', '.join(wanted)})")
        if stuck:
            name = node.attrs["Description"].get("Hostname", node.id)
            raise ConflictError(f"node {name} cannot be drained: no other ready, active node can run "
                                f"{'; '.join(stuck)}", hint="add or activate such a node first, or pause those spaces")

    def finish_drain(self, name: str, timeout_s: float = DRAIN_WAIT_S, *, empty_data: bool = False) -> list[Moved]:
        """Move the spaces pinned to ``name`` with their data, one after another; then, once no other task of ours
        runs there (the rolling updates are through), or ``timeout_s`` passed, drain it. Draining earlier would
        stop a task before its replacement passed its health check. A failed move leaves the node active."""
        node = self._node(name)
        moved, failures = [], []
        for space, (node_id, service) in sorted(self._pins().items()):
            if node_id != node.id:
                continue
            try:
                moved.append(self.move_space(space, service, node, empty_data=empty_data))
            except SpacesError as exc:
                log.warning("draining %s: %s", name, exc)
                failures.append(str(exc))
        stuck = {space for space, (node_id, _) in self._pins().items() if node_id == node.id}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(self._tasks_on(s, node.id) for s in self._services()
                                                  if s.attrs["Spec"].get("Labels", {}).get(SPACE_LABEL) not in stuck):
            time.sleep(POLL_S)
        if failures:
            self._label(node, DRAIN_ERROR_LABEL, "; ".join(failures)[:2000])
            return moved
        self._availability(node, "drain")
        return moved

    def move_space(self, space_id: str, service: Any, node: Any, *, empty_data: bool = False) -> Moved:
        """Copy the space's /data from ``node`` to the node with the fewest of our tasks that fits its
        constraints, with the app stopped for the copy; then re-pin it there and start it. A failed copy starts
        it again where it was."""
        if self.pins is None:
            raise BackendError("moving /data needs the swarm backend's pins")
        with self.pins.moving(space_id):
            return self._move(space_id, service, node, empty_data)

    def _move(self, space_id: str, service: Any, node: Any, empty_data: bool) -> Moved:
        assert self.pins is not None
        template = service.attrs["Spec"].get("TaskTemplate", {}) if service is not None else {}
        wanted = _wanted(service)
        target = datapin.choose(self.pins.candidates(), wanted, exclude={node.id})
        if target is None:
            raise BackendError(f"{space_id}: no other ready, active node satisfies {wanted or 'it'} to take its /data")
        pin = self.pins.book.get(space_id) or Pin(node=node.id, volume="", image="")
        volume = next((m.get("Source", "") for m in template.get("ContainerSpec", {}).get("Mounts") or []
                       if m.get("Target") == "/data"), "") or pin.volume
        image = template.get("ContainerSpec", {}).get("Image") or pin.image
        copy = None if empty_data else datamove.Copy(
            self.client, datamove.Move(space_id, volume, image, node.id, target.id, self._address(target.id)),
            self.platform)
        try:
            if copy is not None:
                copy.start()  # while the app still serves: the receiver's image pull is off the outage
            stopped = time.monotonic()
            copy_s = self._stopped_copy(space_id, service, node, copy)
        finally:
            if copy is not None:
                copy.close()
        self.pins.book.put(space_id, Pin(node=target.id, volume=volume, image=image))
        if service is not None:
            self._respec(service, replicas=1, pin=target.id)
        log.info("moved %s's /data from %s to %s (%.1f s copy)", space_id, node.id, target.name, copy_s)
        return Moved(space_id, target.name, time.monotonic() - stopped, copy_s)

    def _stopped_copy(self, space_id: str, service: Any, node: Any, copy: datamove.Copy | None) -> float:
        """Scale the app to 0, copy, and return the copy's seconds; on failure the app starts where it was."""
        if service is not None:
            self._respec(service, replicas=0)
        try:
            if service is not None and node.attrs.get("Status", {}).get("State") == "ready":
                self._wait_stopped(service, space_id)
            return copy.finish() if copy is not None else 0.0
        except SpacesError:
            if service is not None:
                self._respec(service, replicas=1)  # back where its data is
            raise

    def activate(self, name: str) -> None:
        node = self._node(name)
        self._availability(node, "active")
        self._label(node, DRAIN_ERROR_LABEL, None)
        for service in self._services():
            self._constrain(service, f"node.hostname!={name}", add=False)

    # --- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _tasks_on(service: Any, node_id: str) -> list[dict[str, Any]]:
        return [t for t in service.tasks(filters={"desired-state": "running"}) if t.get("NodeID") == node_id]

    def _services(self) -> list[Any]:
        """The platform's app services (not the one-shot jobs that move /data)."""
        found = self.client.services.list(filters={"label": f"{PLATFORM_LABEL}={self.platform}"})
        return [s for s in found if SPACE_LABEL in s.attrs["Spec"].get("Labels", {})]

    def _pins(self) -> dict[str, tuple[str, Any]]:
        """Space → (node id holding its /data, its service or None): the services' labels, and the book for the
        spaces that have no service now (asleep, paused)."""
        found: dict[str, tuple[str, Any]] = {}
        running = set()
        for service in self._services():
            space = service.attrs["Spec"]["Labels"][SPACE_LABEL]
            running.add(space)
            if node_id := datapin.pinned_to(service.attrs["Spec"]):
                found[space] = (node_id, service)
        for space, pin in (self.pins.book.all() if self.pins is not None else {}).items():
            if space not in running:  # a service says itself whether it is pinned (several replicas: not)
                found[space] = (pin.node, None)
        return found

    def _wait_stopped(self, service: Any, space_id: str) -> None:
        deadline = time.monotonic() + STOP_WAIT_S
        while any(t.get("Status", {}).get("State") in _LIVE for t in service.tasks()):
            if time.monotonic() > deadline:
                raise BackendError(f"{space_id}: its task did not stop within {STOP_WAIT_S:g} s; not moved")
            time.sleep(0.2)

    def _address(self, node_id: str) -> str:
        return str(self.client.nodes.get(node_id).attrs.get("Status", {}).get("Addr", ""))

    def _node(self, name: str) -> Any:
        for node in self.client.nodes.list():
            if name in (node.attrs["Description"].get("Hostname"), node.id):
                return node
        names = ", ".join(n.attrs["Description"].get("Hostname", n.id) for n in self.client.nodes.list())
        raise NotFoundError(f"the swarm has no node '{name}'", hint=f"its nodes: {names}")

    def _availability(self, node: Any, availability: str) -> None:
        node.reload()
        node.update({**node.attrs["Spec"], "Availability": availability})

    def _label(self, node: Any, key: str, value: str | None) -> None:
        node.reload()
        labels = dict(node.attrs["Spec"].get("Labels") or {})
        if labels.get(key) == value or (value is None and key not in labels):
            return
        labels.pop(key, None)
        if value is not None:
            labels[key] = value
        node.update({**node.attrs["Spec"], "Labels": labels})
        node.reload()

    def _constrain(self, service: Any, constraint: str, *, add: bool) -> None:
        """Add or remove one placement constraint, keeping the rest of the service's spec as it is."""
        service.reload()
        placement = service.attrs["Spec"]["TaskTemplate"].setdefault("Placement", {})
        constraints = [c for c in placement.get("Constraints") or [] if c != constraint]
        if add:
            constraints.append(constraint)
        if constraints == (placement.get("Constraints") or []):
            return
        placement["Constraints"] = constraints
        self._update(service)

    def _respec(self, service: Any, *, replicas: int, pin: str | None = None) -> None:
        """Scale the service (and re-pin it to node ``pin``), keeping the rest of its spec as it is. A service
        the supervisor removed meanwhile (a restart) is left alone: its next launch follows the pin book."""
        try:
            service.reload()
        except docker.errors.NotFound:
            return
        spec = service.attrs["Spec"]
        if pin is not None:
            spec["TaskTemplate"], spec["Labels"] = datapin.repinned_spec(spec["TaskTemplate"], spec.get("Labels") or {},
                                                                         pin)
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
        self._update(service)

    def _update(self, service: Any) -> None:
        """Send the service's (edited) spec back: the low-level call keeps every field as it is."""
        spec = service.attrs["Spec"]
        self.client.api.update_service(service.id, service.version, task_template=spec["TaskTemplate"],
                                       name=spec["Name"], labels=spec.get("Labels"), mode=spec.get("Mode"),
                                       update_config=spec.get("UpdateConfig"), endpoint_spec=spec.get("EndpointSpec"),
                                       rollback_config=spec.get("RollbackConfig"))


def _wanted(service: Any) -> list[str]:
    """What a service asks of its node, beyond its /data pin and the drains' ``node.hostname!=`` (pure)."""
    if service is None:
        return []
    placement = service.attrs["Spec"].get("TaskTemplate", {}).get("Placement") or {}
    return [c for c in datapin.without_pin(placement.get("Constraints") or []) if not c.startswith("node.hostname!=")]
