"""Swarm backend: each space is one Docker Swarm service, from the image the docker backend builds.

The image is pushed to the platform's own registry (``spaces_runtime.swarm.registry``) and the service names it
by digest, so every node runs exactly the bytes that were built. Tasks get the docker backend's hardening (uid
1000, every capability dropped, read-only root, a tmpfs at /tmp, a per-node volume at /data, tini as PID 1,
the tier's CPU, memory and pids caps as service limits), labels naming the platform and the space, a health
check that asks the SDK's readiness path (``probes.readiness_path``) from inside the task, a restart policy, and an
``update_config`` with ``order: start-first``: a redeploy is a rolling update where a new task has passed its
health check before an old one is told to stop.

How the gateway reaches tasks: each task publishes its app port in host mode on an ephemeral port of its node
(``PublishMode: host``, ``endpoint_mode: dnsrr``). This needs neither IPVS (absent on these hosts; the routing
mesh and VIPs depend on it) nor an overlay the platform must join: the gateway sends requests to
``node address:published port`` of a task it picked itself (``task_upstreams``). The cost: app ports are open on
the nodes' addresses, so the nodes' network must be private to the swarm (as it is for the swarm's own ports).

Old tasks drain instead of dying at once: the stop signal is SIGWINCH, which Python apps ignore, so a task told
to stop keeps answering for DRAIN_S (the gateway stops sending to it within a refresh, TASKS_TTL_S) and is then
killed: Kubernetes' preStop sleep, without an exec hook.

The supervisor drives this like any backend: ``launch`` of a space that already has a service updates it (a
rolling update; the returned instance is the new version, ready once one of its tasks answers), ``stop`` of a
replaced version does nothing (swarm retired its tasks), ``stop`` of a candidate that failed rolls the service
back to the version that served, and ``stop`` of the serving version removes the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.services import Service
from docker.types import (
    SecretReference,
)

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.labels import GENERATION_LABEL, PLATFORM_LABEL, SPACE_LABEL, platform_id
from spaces_runtime.supervisor.tiers import TIERS, Limits, Tier, limits_for
from spaces_runtime.swarm.kit import KitConfigs
from spaces_runtime.swarm.pinning import DataPins, PinBook
from spaces_runtime.swarm.runneraccess import RunnerAccess, runner_access
from spaces_runtime.swarm.secrets import SwarmSecrets, wrapped_command
from spaces_runtime.swarm.service import GPU_LABEL, NANO, generation_of, service_config, service_name, task_url

IMAGE_REPO = "spaces-runtime/app"  # in the platform's registry: {registry}/spaces-runtime/app:{tag}
TASKS_TTL_S = 0.5
FAILED_TASKS = 3  # failed tasks of a version with none running: it counts as exited (a crash loop)
# an instance's upstream until ``exited`` finds one of its tasks running: a valid URL that refuses at once (the
# discard port on loopback), so readiness probes say "not yet" rather than fail on an empty address
NO_TASK_YET = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Task:
    """A running task as the gateway sees it."""

    id: str
    url: str
    node: str
    generation: int


@dataclass
class _Version:
    generation: int
    service_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


class SwarmBackend:
    name = "swarm"

    def __init__(self, settings: Settings, client: docker.DockerClient, registry: str, *,
                 tiers: dict[str, Tier] | None = None) -> None:
        self.settings = settings
        self.client = client
        self.registry = registry  # host:port every node pulls from
        self.tiers = tiers or TIERS
        self.platform = platform_id(Path(settings.data_dir))
        self._lock = threading.Lock()
        self._generation = 0
        self._versions: dict[str, list[_Version]] = {}  # per space: serving version first, then a candidate
        self._tasks: dict[str, list[Task]] = {}
        self._tasks_at = 0.0
        self._pumps: dict[str, threading.Thread] = {}
        self.secrets = SwarmSecrets(client, self.platform)
        self.with_runner = False  # set by the wiring when the swarm's runner service (swarm.runners) is on
        from spaces_runtime.appkit.install import kit_dir

        self.kit = KitConfigs(client, self.platform, kit_dir(settings))
        # which node holds each single-replica space's /data (swarm.datapin), kept beyond its service
        self.pins = DataPins(client, self.platform, PinBook(Path(settings.data_dir) / "swarm" / "data-nodes.json"))

    # --- the Backend protocol --------------------------------------------------------------------------
    async def launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        if not spec.image:
            raise BackendError(f"{spec.space_id}: no image to run (LaunchSpec.image is None); build it first")
        return await asyncio.to_thread(self._launch, spec, log)

    async def exited(self, instance: Instance) -> ExitInfo | None:
        return await asyncio.to_thread(self._exited, instance)

    async def stop(self, instance: Instance, grace_s: float) -> None:
        await asyncio.to_thread(self._stop, instance)

    async def adopt(self) -> list[Instance]:
        return await asyncio.to_thread(self._adopt)

    def attach_logs(self, instance: Instance, log: LogSink) -> None:
        self._pump(instance.backend_ref.split(":")[0], log, since=int(time.time()))

    async def remove_data(self, space_id: str) -> None:
        """The manager's copy of the space's volume; a worker's copy stays until that node's `docker volume prune`
        (the Engine API reaches only the manager's own volumes). Its /data pin goes too (a new space of that name
        chooses afresh)."""
        with contextlib.suppress(docker.errors.DockerException):
            await asyncio.to_thread(lambda: self.client.volumes.get(self.volume_name(space_id)).remove(force=True))
        self.pins.forget(space_id)

    def held(self, space_id: str) -> str | None:
        if self.pins.is_moving(space_id):
            return "its /data is being copied to another node (spaces nodes drain); it answers again after"
        return None

    # --- beyond the protocol: the gateway's view -----------------------------------------------------------
    def task_upstreams(self, space_id: str) -> tuple[str, ...]:
        """Where the space's healthy tasks answer, newest version first (refreshed at most every TASKS_TTL_S)."""
        if time.monotonic() - self._tasks_at > TASKS_TTL_S:
            self._refresh_tasks()
        tasks = sorted(self._tasks.get(space_id, []), key=lambda t: -t.generation)
        return tuple(t.url for t in tasks)

    def volume_name(self, space_id: str) -> str:
        return f"spaces-{self.platform}-{service_name(space_id).removeprefix('spaces-')}-data"

    def limits(self, hardware: str) -> Limits:
        """The tier scaled to the smallest ready node, so a task fits wherever swarm puts it."""
        nodes = [n for n in self.client.nodes.list() if n.attrs.get("Status", {}).get("State") == "ready"]
        resources = [n.attrs.get("Description", {}).get("Resources", {}) for n in nodes] or [{}]
        cpus = min(int(r.get("NanoCPUs") or NANO) for r in resources) // NANO
        memory = min(int(r.get("MemoryBytes") or 0) for r in resources)
        return limits_for(hardware, self.tiers, max(1, cpus), memory, 0)

    # --- blocking work -----------------------------------------------------------------------------------
    def _launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        self.pins.refuse_if_away(spec.space_id, spec.replicas)
        image = self.push(spec.image or "", log)
        limits = self.limits(spec.hardware)
        replicas = spec.replicas
        access = self._runner_access(spec, log)
        spec = access.spec
        generation = self._next_generation()
        constraints = self._gpu_constraints(spec, log) + access.constraints
        secrets, command = self._secrets(spec, log)
        config = service_config(spec, limits, image=image, platform=self.platform, generation=generation,
                                replicas=replicas, volume=self.volume_name(spec.space_id), constraints=constraints,
                                secrets=secrets, command=command)
        config["mounts"] += access.mounts
        config["configs"] = access.configs
        service = self._service(service_name(spec.space_id))
        config = self.pins.apply(config, spec.space_id, service, replicas, log)  # node.id== for one replica
        try:
            if service is None:
                log(f"$ docker service create {config['name']} ({replicas} replica(s), {image})")
                service = self.client.services.create(**config)
            else:
                log(f"$ docker service update {config['name']}: rolling update, start-first, to {image}")
                service.update(**config)
        except docker.errors.DockerException as exc:
            raise BackendError(f"{spec.space_id}: the swarm refused the service: {exc}") from None
        self._remember(spec.space_id, _Version(generation, service.id, config))
        self._pump(service.id, log, since=int(time.time()) - 1)
        return Instance(space_id=spec.space_id, upstream=NO_TASK_YET, backend_ref=f"{service.id}:{generation}",
                        started_at=time.time())

    def _runner_access(self, spec: LaunchSpec, log: LogSink) -> RunnerAccess:
        return runner_access(spec, log, kit=self.kit, platform=self.platform, with_runner=self.with_runner,
                             image_config=lambda: self._image_config(spec.image or ""))

    def _image_config(self, image: str) -> dict[str, Any]:
        try:
            return dict(self.client.images.get(image).attrs.get("Config") or {})
        except docker.errors.DockerException:
            return {}

    def _secrets(self, spec: LaunchSpec, log: LogSink) -> tuple[list[SecretReference], list[str] | None]:
        """The space's secrets as Docker secrets, and the command that exports them to the app's environment;
        secrets of its older versions go first (the serving version's are in use, so the Engine keeps them)."""
        self.secrets.prune(spec.space_id)
        values = {key: spec.env[key] for key in spec.secret_keys if key in spec.env}
        if not values:
            return [], None
        references = self.secrets.references(spec.space_id, values)
        entrypoint, cmd, has_shell = self.secrets.image_command(spec.image or "")
        log(f"secrets {', '.join(sorted(values))}: Docker secrets, mounted at /run/secrets")
        if not has_shell:
            log("warning: the image has no /bin/sh, so its secrets are files in /run/secrets only, not variables")
            return references, None
        return references, wrapped_command(entrypoint, cmd)

    def _gpu_constraints(self, spec: LaunchSpec, log: LogSink) -> list[str]:
        """A GPU tier runs only on nodes labelled with GPUs (``swarm.nodes.label_gpus``); with none in the swarm
        it runs without, as on the docker backend, and says so."""
        if not self.tiers[spec.hardware].gpus:
            return []
        if any(int(n.attrs.get("Spec", {}).get("Labels", {}).get(GPU_LABEL, "0") or 0)
               for n in self.client.nodes.list()):
            return [f"node.labels.{GPU_LABEL}!=0"]
        log(f"warning: hardware {spec.hardware} asks for a GPU; no node of this swarm has one, so the app runs "
            "without")
        return []

    def push(self, local: str, log: LogSink, repository: str = IMAGE_REPO) -> str:
        """Tag the built image for the platform's registry, push it, and name it by digest."""
        target = f"{self.registry}/{repository}:{local.rsplit(':', 1)[-1]}"
        try:
            image = self.client.images.get(local)
            image.tag(target)
            for line in self.client.images.push(target, stream=True, decode=True):
                if line.get("error"):
                    raise BackendError(f"pushing {target} failed: {line['error']}")
            image.reload()
        except docker.errors.DockerException as exc:
            raise BackendError(f"pushing {local} to the platform's registry {self.registry} failed: {exc}",
                               hint="is the registry running and listed in the engine's insecure-registries?"
                               ) from None
        digest = next((d for d in image.attrs.get("RepoDigests", []) if d.startswith(f"{self.registry}/")), None)
        if digest is None:
            raise BackendError(f"the registry did not report a digest for {target}")
        log(f"==> pushed {digest}")
        return digest

    def _next_generation(self) -> int:
        with self._lock:
            self._generation = max(time.time_ns(), self._generation + 1)
            return self._generation

    def _remember(self, space_id: str, version: _Version) -> None:
        with self._lock:
            versions = self._versions.setdefault(space_id, [])
            versions[:] = [*[v for v in versions if v.service_id == version.service_id][-1:], version]

    def _service(self, name_or_id: str) -> Service | None:
        try:
            return self.client.services.get(name_or_id)
        except docker.errors.NotFound:
            return None

    def _exited(self, instance: Instance) -> ExitInfo | None:
        service_id, generation = _ref(instance.backend_ref)
        service = self._service(service_id)
        if service is None:
            return ExitInfo(code=None, reason="the service is gone (removed outside the platform)")
        tasks = [t for t in service.tasks() if generation_of(t) == generation]
        addresses = self._node_addresses()
        urls = [url for t in tasks if (url := task_url(t, addresses))]
        if urls:
            if instance.upstream not in urls:  # rescheduled: probe a task that exists
                instance.upstream = urls[0]
            return None
        failed = sorted((t for t in tasks if t.get("Status", {}).get("State") in ("failed", "rejected")),
                        key=lambda t: t.get("UpdatedAt", ""))
        if len(failed) >= FAILED_TASKS:
            status = failed[-1].get("Status", {})
            code = (status.get("ContainerStatus") or {}).get("ExitCode")
            return ExitInfo(code=code, reason=f"{len(failed)} tasks failed, the last: {status.get('Err') or code}")
        return None

    def _stop(self, instance: Instance) -> None:
        service_id, generation = _ref(instance.backend_ref)
        with self._lock:
            versions = self._versions.get(instance.space_id, [])
            current = versions[-1] if versions else None
            if current is not None and current.generation != generation:
                return  # a replaced version: the rolling update already retired its tasks
            previous = versions[-2] if len(versions) > 1 else None
            if previous is not None:
                versions.pop()
        service = self._service(service_id)
        if service is None:
            return
        if previous is not None:  # a candidate that failed: back to the version that serves
            # (adopted after a platform restart, its spec is unknown here: swarm's own failure_action rollback
            # undoes an update whose tasks fail)
            if previous.kwargs:
                with contextlib.suppress(docker.errors.DockerException):
                    service.update(**self.pins.current(previous.kwargs, instance.space_id))  # a drain moved it?
            return
        with contextlib.suppress(docker.errors.NotFound):
            service.remove()
        self.secrets.prune(instance.space_id)
        with self._lock:
            self._versions.pop(instance.space_id, None)

    def _adopt(self) -> list[Instance]:
        adopted = []
        for service in self.client.services.list(filters={"label": f"{PLATFORM_LABEL}={self.platform}"}):
            labels = service.attrs.get("Spec", {}).get("Labels", {})
            space_id, generation = labels.get(SPACE_LABEL, ""), labels.get(GENERATION_LABEL, "")
            if not space_id or not generation.isdigit():
                service.remove()
                continue
            self._remember(space_id, _Version(int(generation), service.id, {}))
            adopted.append(Instance(space_id=space_id, upstream=NO_TASK_YET, backend_ref=f"{service.id}:{generation}",
                                    started_at=time.time()))
        return adopted

    def _node_addresses(self) -> dict[str, str]:
        return {n.id: n.attrs.get("Status", {}).get("Addr", "") for n in self.client.nodes.list()
                if n.attrs.get("Status", {}).get("State") == "ready"}

    def _refresh_tasks(self) -> None:
        try:
            services = {s.id: s.attrs.get("Spec", {}).get("Labels", {}).get(SPACE_LABEL, "")
                        for s in self.client.services.list(filters={"label": f"{PLATFORM_LABEL}={self.platform}"})}
            raw = self.client.api.tasks(filters={"desired-state": "running"})
            addresses = self._node_addresses()
        except docker.errors.DockerException:
            return  # keep the last view; the manager answers again shortly
        found: dict[str, list[Task]] = {}
        for task in raw:
            space_id = services.get(task.get("ServiceID", ""))
            url = task_url(task, addresses)
            if space_id and url:
                found.setdefault(space_id, []).append(Task(task["ID"], url, task.get("NodeID", ""),
                                                           generation_of(task)))
        self._tasks, self._tasks_at = found, time.monotonic()

    def _pump(self, service_id: str, log: LogSink, since: int) -> None:
        old = self._pumps.get(service_id)
        if old is not None and old.is_alive():
            return  # one follower per service: a rolling update's tasks are the same service's
        thread = threading.Thread(target=_pump_logs, args=(self.client, service_id, log, since), daemon=True,
                                  name=f"logs-{service_id[:12]}")
        self._pumps[service_id] = thread
        thread.start()


def _ref(backend_ref: str) -> tuple[str, int]:
    service_id, _, generation = backend_ref.partition(":")
    return service_id, int(generation) if generation.isdigit() else 0


def _pump_logs(client: docker.DockerClient, service_id: str, log: LogSink, since: int) -> None:
    """Every task's output, line by line, as the manager collects it, until the service goes."""
    pending = b""
    try:
        stream = client.api.service_logs(service_id, follow=True, stdout=True, stderr=True, since=since)
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                log(line.decode("utf-8", errors="replace").rstrip("\r"))
    except (docker.errors.DockerException, OSError) as exc:
        log(f"[log stream ended: {exc}]")
