"""Pinning a space's /data to a node (``swarm.datapin`` decides; this reads the swarm and keeps the book).

The pin outlives the service: a space that sleeps, is paused or restarts after a hung health check has its
service removed, and its next service must go back to the node that holds its data. So the platform keeps each
pin in ``DATA_DIR/swarm/data-nodes.json`` (space → node id, volume, image), next to the store it belongs with,
and the service carries it as a label and a ``node.id==`` constraint for anyone who inspects the swarm.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from spaces_runtime.errors import BackendError, NodeUnavailableError
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.labels import PLATFORM_LABEL
from spaces_runtime.swarm import datapin

MOVE_WAIT_S = 900.0  # a launch waits this long for a move of the space's /data (its copy's own bound is 600 s)


@dataclass(frozen=True)
class Pin:
    node: str  # node id
    volume: str  # the space's /data volume on that node
    image: str  # an image of the space (by digest): the data mover runs it, so /data keeps its owner


class PinBook:
    """Space id → Pin, in one small JSON file, written whole (atomically) on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, space_id: str) -> Pin | None:
        entry = self._read().get(space_id)
        return Pin(**entry) if entry else None

    def all(self) -> dict[str, Pin]:
        return {space: Pin(**entry) for space, entry in self._read().items()}

    def put(self, space_id: str, pin: Pin) -> None:
        with self._lock:
            self._write({**self._read(), space_id: asdict(pin)})

    def forget(self, space_id: str) -> None:
        with self._lock:
            entries = self._read()
            if entries.pop(space_id, None) is not None:
                self._write(entries)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            found = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise BackendError(f"{self.path}: unreadable ({exc}); it says which node holds each space's /data",
                               hint="restore it from a backup, or remove it to pin spaces afresh") from None
        return found if isinstance(found, dict) else {}

    def _write(self, entries: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        spare = self.path.with_suffix(".tmp")
        spare.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(spare, self.path)


class DataPins:
    """What ``SwarmBackend._launch`` asks: the service's keyword arguments with the space's pin applied."""

    def __init__(self, client: docker.DockerClient, platform: str, book: PinBook) -> None:
        self.client = client
        self.platform = platform
        self.book = book
        self._moves: dict[str, threading.Lock] = {}
        self._moves_lock = threading.Lock()

    @contextlib.contextmanager
    def moving(self, space_id: str) -> Iterator[None]:
        """Held while a drain moves the space's /data: a launch meanwhile (the supervisor restarting an app that
        stopped answering during the copy) waits for it, then goes to the node the data went to."""
        with self._moves_lock:
            lock = self._moves.setdefault(space_id, threading.Lock())
        if not lock.acquire(timeout=MOVE_WAIT_S):
            raise BackendError(f"{space_id}: another move of its /data has not ended in {MOVE_WAIT_S:g} s")
        try:
            yield
        finally:
            lock.release()

    def is_moving(self, space_id: str) -> bool:
        """Whether a drain moves the space's /data right now (``moving`` is held)."""
        with self._moves_lock:
            lock = self._moves.get(space_id)
        return lock is not None and lock.locked()

    def refuse_if_away(self, space_id: str, replicas: int) -> None:
        """Raise NodeUnavailableError at once when a single-replica space's node is down or drained: before a
        launch pushes its image or touches its secrets, which a retry each minute would do for nothing. A node
        that left the swarm is ``apply``'s to decide (a new pin)."""
        pin = self.book.get(space_id) if replicas == 1 else None
        if pin is None:
            return
        try:  # one node's state: the task counts ``candidates`` reads are ``apply``'s, when the launch goes on
            node = datapin.candidate(self.client.nodes.get(pin.node).attrs)
        except docker.errors.DockerException:
            return  # gone from the swarm, or the manager did not answer: ``apply`` decides, and says why
        trouble = datapin.problem(node, space_id, [])
        if isinstance(trouble, NodeUnavailableError):
            raise trouble

    def apply(self, config: dict[str, Any], space_id: str, service: Any, replicas: int,
              log: LogSink) -> dict[str, Any]:
        """Pin a single-replica space (raising, with what to do, when its node cannot run it now); leave a space
        with several replicas unpinned."""
        with self.moving(space_id):
            return self._apply(config, space_id, service, replicas, log)

    def _apply(self, config: dict[str, Any], space_id: str, service: Any, replicas: int,
               log: LogSink) -> dict[str, Any]:
        if service is not None:  # a move meanwhile changed its spec (and version)
            with contextlib.suppress(docker.errors.NotFound):
                service.reload()
        nodes = self.candidates()
        remembered = self.book.get(space_id)
        label = datapin.pinned_to(service.attrs.get("Spec", {})) if service is not None else None
        decision = datapin.decide(replicas=replicas, remembered=remembered.node if remembered else label,
                                  running_on=_running_node(service), nodes=nodes,
                                  constraints=list(config.get("constraints") or []))
        if decision.node_id is None:
            return datapin.pinned_config(config, None)
        node = next(n for n in nodes if n.id == decision.node_id)
        trouble = datapin.problem(node, space_id, list(config.get("constraints") or []))
        if trouble is not None:  # the supervisor writes it to the run log and the space's status
            raise trouble
        if decision.note and (remembered is None or remembered.node != decision.node_id):
            log(decision.note)
        volume = next((m["Source"] for m in config.get("mounts") or [] if m.get("Target") == "/data"), "")
        self.book.put(space_id, Pin(node=decision.node_id, volume=volume, image=str(config.get("image", ""))))
        return datapin.pinned_config(config, decision.node_id)

    def candidates(self) -> list[datapin.Candidate]:
        """Every node, with how many of the platform's tasks run there."""
        try:
            ours = {s.id for s in self.client.services.list(filters={"label": f"{PLATFORM_LABEL}={self.platform}"})}
            tasks = Counter(t.get("NodeID", "") for t in self.client.api.tasks(filters={"desired-state": "running"})
                            if t.get("ServiceID") in ours)
            return [datapin.candidate(n.attrs, tasks[n.id]) for n in self.client.nodes.list()]
        except docker.errors.DockerException as exc:
            raise BackendError(f"reading the swarm's nodes failed: {exc}") from None

    def current(self, config: dict[str, Any], space_id: str) -> dict[str, Any]:
        """An older launch's service arguments (a rollback's) with the pin as it is now: a drain since then moved
        the data, and the old arguments would send the task back to the node it left."""
        pin = self.book.get(space_id)
        if pin is None or datapin.DATA_NODE_LABEL not in (config.get("labels") or {}):
            return config
        return datapin.pinned_config(config, pin.node)

    def forget(self, space_id: str) -> None:
        self.book.forget(space_id)


def _running_node(service: Any) -> str | None:
    if service is None:
        return None
    with contextlib.suppress(docker.errors.DockerException):
        for task in service.tasks(filters={"desired-state": "running"}):
            if task.get("Status", {}).get("State") == "running":
                return str(task.get("NodeID") or "") or None
    return None
