"""Swarm backend: each space is one Docker Swarm service, from the image the docker backend builds.

The image is pushed to the platform's own registry (``spaces_runtime.swarm.registry``) and the service names it
by digest, so every node runs exactly the bytes that were built. Tasks get the docker backend's hardening (uid
1000, every capability dropped, read-only root, a tmpfs at /tmp, a per-node volume at /data, tini as PID 1,
the tier's CPU, memory and pids caps as service limits), labels naming the platform and the space, a health
check that asks the SDK's readiness URL (``probes.readiness_url``) from inside the task, a restart policy, and an
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
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.services import Service
from docker.types import (
    ConfigReference,
    EndpointSpec,
    Healthcheck,
    Mount,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.docker import (
    GENERATION_LABEL,
    MIB,
    PLATFORM_LABEL,
    SPACE_LABEL,
    TIERS,
    Limits,
    Tier,
    image_pythonpath,
    limits_for,
    platform_id,
    runner_mounts,
    runtime_env,
)
from spaces_runtime.supervisor.probes import readiness_url
from spaces_runtime.swarm.kit import KIT_MOUNT, KitConfigs
from spaces_runtime.swarm.pinning import DataPins, PinBook
from spaces_runtime.swarm.runnerplace import (
    RUNNER_CONSTRAINT,
    RUNNER_MOUNT,
    SOCKET,
    TOKEN_KEY,
    socket_volume,
    without_runner,
)
from spaces_runtime.swarm.secrets import SwarmSecrets, wrapped_command

IMAGE_REPO = "spaces-runtime/app"  # in the platform's registry: {registry}/spaces-runtime/app:{tag}
DRAIN_S = 3.0
TASKS_TTL_S = 0.5
FAILED_TASKS = 3  # failed tasks of a version with none running: it counts as exited (a crash loop)
NANO = 1_000_000_000
# an instance's upstream until ``exited`` finds one of its tasks running: a valid URL that refuses at once (the
# discard port on loopback), so readiness probes say "not yet" rather than fail on an empty address
NO_TASK_YET = "http://127.0.0.1:9"
GPU_LABEL = "spaces-runtime.gpus"  # a node label: how many GPUs its engine reports (swarm.nodes.label_gpus)


@dataclass(frozen=True)
class Task:
    """A running task as the gateway sees it."""

    id: str
    url: str
    node: str
    generation: int


@dataclass
class RunnerAccess:
    """What ``_runner_access`` adds to a task: the spec with its runner env, mounts, constraints, kit configs."""

    spec: LaunchSpec
    mounts: list[Mount] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    configs: list[ConfigReference] = field(default_factory=list)


@dataclass
class _Version:
    generation: int
    service_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def service_name(space_id: str) -> str:
    """alice/My_App → spaces-alice--my-app (swarm: letters, digits and dashes, at most 63)."""
    slug = re.sub(r"[^a-z0-9-]", "-", space_id.replace("/", "--").lower())
    return f"spaces-{slug}"[:63].rstrip("-")


def health_test(spec: LaunchSpec) -> list[str] | None:
    """The readiness probe run inside the task with the image's own Python; None for a docker-SDK app (its image
    may have no Python; the supervisor's probe from outside still decides when it is ready)."""
    if spec.sdk not in ("gradio", "streamlit"):
        return None
    url = readiness_url(spec, f"http://127.0.0.1:{spec.app_port}")
    code = "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)"
    return ["CMD", "python3", "-c", code, url]


def service_config(spec: LaunchSpec, limits: Limits, *, image: str, platform: str, generation: int,
                   replicas: int, volume: str, constraints: list[str], secrets: list[SecretReference] | None = None,
                   command: list[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``client.services.create`` and ``Service.update`` (pure). ``secrets`` are mounted
    at /run/secrets and kept out of the environment in the spec (``swarm.secrets``); ``command`` replaces the
    image's entrypoint (the loop that exports them)."""
    labels = {SPACE_LABEL: spec.space_id, PLATFORM_LABEL: platform, GENERATION_LABEL: str(generation)}
    resources = Resources(cpu_limit=limits.nano_cpus, mem_limit=limits.memory_bytes)
    resources["Limits"]["Pids"] = limits.pids  # Engine API 1.41; docker-py has no argument for it
    tmpfs_mb = max(64, limits.memory_bytes // MIB // 4)
    test = health_test(spec)
    config: dict[str, Any] = {
        "image": image,
        "name": service_name(spec.space_id),
        "labels": labels,
        "container_labels": labels,
        "env": [f"{k}={v}" for k, v in runtime_env(spec).items() if k not in spec.secret_keys],
        "secrets": secrets or [],
        "user": "1000:1000",
        "cap_drop": ["ALL"],
        "read_only": True,
        "init": True,
        "mounts": [Mount("/tmp", None, type="tmpfs", tmpfs_size=tmpfs_mb * MIB, tmpfs_mode=0o1777),
                   Mount("/data", volume, type="volume", labels=labels)],
        "resources": resources,
        "mode": ServiceMode("replicated", replicas=replicas),
        "restart_policy": RestartPolicy(condition="any", delay=NANO, max_attempts=0, window=0),
        "update_config": UpdateConfig(parallelism=1, order="start-first", failure_action="rollback",
                                      monitor=2 * NANO),
        "endpoint_spec": EndpointSpec(mode="dnsrr", ports=[{"Protocol": "tcp", "TargetPort": spec.app_port,
                                                            "PublishMode": "host"}]),
        "stop_signal": "SIGWINCH",
        "stop_grace_period": int(DRAIN_S * NANO),
        "constraints": constraints,
        "log_driver": "json-file",
        "log_driver_options": {"max-size": "10m", "max-file": "2"},
    }
    if command is not None:
        config["command"] = command
    if test is not None:
        config["healthcheck"] = Healthcheck(test=test, interval=2 * NANO, timeout=4 * NANO, retries=3,
                                            start_period=int(min(spec.startup_timeout_s, 600) * NANO))
    return config


def task_url(task: dict[str, Any], node_addresses: dict[str, str]) -> str | None:
    """http://node:published-port of a task that runs on a ready node, else None (pure)."""
    if task.get("Status", {}).get("State") != "running" or task.get("DesiredState") != "running":
        return None
    address = node_addresses.get(task.get("NodeID", ""))
    ports = (task.get("Status", {}).get("PortStatus") or {}).get("Ports") or []
    published = next((p.get("PublishedPort") for p in ports if p.get("PublishedPort")), None)
    return f"http://{address}:{published}" if address and published else None


def generation_of(task: dict[str, Any]) -> int:
    label = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels", {}).get(GENERATION_LABEL, "")
    return int(label) if label.isdigit() else 0


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
        """Every app gets the app-side kit (Docker configs, ``swarm.kit``) as on the other backends. An app that
        names runner models also reaches the runner of its node (``swarm.runners``): the node's runner volume
        read-only, its token as a Docker secret, and a place on a runner node. Others run anywhere, without the
        runner's address and token."""
        if not spec.env.get("SPACES_RUNNER_URL", "").startswith("unix://"):
            return RunnerAccess(spec)  # the runner is off: no kit either, as on the docker backend
        env, _ = runner_mounts(spec.env, self.kit.kit, image_pythonpath(self._image_config(spec.image or "")),
                               kit_mount=KIT_MOUNT)
        configs = self.kit.references()
        if not (self.with_runner and spec.uses_runner):
            if self.with_runner:
                log("the app names no runner model (README models: or runner_models:), so it runs on any node, "
                    "without the model runner")
            return RunnerAccess(replace(spec, env=without_runner(env)), configs=configs)
        # runner_mounts pointed the URL at the docker backend's bind mount; on the swarm the socket is in the
        # node's runner volume, mounted elsewhere
        env["SPACES_RUNNER_URL"] = f"unix://{SOCKET}"
        log(f"model runner: the runner of the task's node, through {SOCKET} (a runner node: {RUNNER_CONSTRAINT})")
        mount = Mount(RUNNER_MOUNT, socket_volume(self.platform), type="volume", read_only=True)
        return RunnerAccess(replace(spec, env=env, secret_keys=spec.secret_keys | {TOKEN_KEY}), [mount],
                            [RUNNER_CONSTRAINT], configs)

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
