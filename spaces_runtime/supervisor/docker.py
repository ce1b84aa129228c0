"""Docker backend: each app is one hardened container on the platform's private bridge network.

Hardening: uid 1000, every capability dropped, no-new-privileges, the engine's default seccomp profile, read-only
root filesystem with a tmpfs at /tmp and a per-app /data (a disk of its own with a quota where the platform runs on
the engine's host: ``dockerdata``; else a named volume), memory/CPU/pids limits from a hardware tier, no Docker
socket, tini as PID 1.

The gateway (on the host) reaches an app at its container IP on the bridge, port ``app_port``: nothing is
published on a host interface, no host port is allocated (no races between apps or with other services), and a
platform that itself runs in a container on the same network reaches apps the same way. Inter-container traffic
on the bridge is off (icc=false), so apps cannot reach each other.

The model runner: when it is enabled and the app's env points at its Unix socket, the socket's directory (one
holding only the socket) is mounted read-only at /run/spaces-runner and the appkit (client + ``spaces`` shim) at
/opt/spaces-appkit; SPACES_RUNNER_URL and PYTHONPATH, written by ``appkit_env`` for the host's view, are
rewritten here to the container's. Connecting needs no write access to the mount, the socket is mode 0666 (the
runner answers nothing without the app's signed token), so uid 1000 connects whatever uid runs the platform.

Containers carry labels naming the platform (a digest of its data dir as the engine's host sees it: see
``hostpaths``, like every bind source) and the space, so that after a restart
``adopt`` takes over this platform's running containers and removes its dead ones and duplicates, while leaving
other platforms on the same engine alone. Docker SDK calls block, so they run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import DeviceRequest, Mount

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.logs import LogSink
from spaces_runtime.sandbox.network import guard_containers
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.dockerdata import DataDisks, note_volumes, why_not
from spaces_runtime.supervisor.hostpaths import host_path, host_volumes, own_mounts
from spaces_runtime.supervisor.labels import GENERATION_LABEL, PLATFORM_LABEL, PORT_LABEL, SPACE_LABEL, platform_id
from spaces_runtime.supervisor.tiers import MIB, TIERS, Limits, Tier, limits_for, under_ceilings

log = logging.getLogger("spaces_runtime")

_DRAIN_S = 2.0
RUNNER_MOUNT = "/run/spaces-runner"
APPKIT_MOUNT = "/opt/spaces-appkit"


def _slug(space_id: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", space_id.replace("/", "--")).lower()


def runtime_env(spec: LaunchSpec) -> dict[str, str]:
    """The image sets port and address; the run adds the gateway's path prefix and writable cache places."""
    env = {
        "GRADIO_ROOT_PATH": spec.base_path.rstrip("/"),
        "STREAMLIT_SERVER_BASE_URL_PATH": spec.base_path.strip("/"),
        "XDG_CACHE_HOME": "/tmp/.cache",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "HF_HOME": "/data/.huggingface",
        "SPACE_ID": spec.space_id,
    }
    env.update(spec.env)
    return env


def runner_mounts(env: dict[str, str], kit: Path | None, image_pythonpath: str = "", kit_mount: str = APPKIT_MOUNT
                  ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The app's env seen from inside its container, and the read-only mounts that make it true (pure).

    ``env`` is what ``appkit_env`` wrote for the host: SPACES_RUNNER_URL=unix://{host dir}/runner.sock and
    PYTHONPATH={kit}. The socket's directory goes to RUNNER_MOUNT, ``kit`` to APPKIT_MOUNT, ahead of the
    image's own PYTHONPATH. An app without a Unix-socket runner address gets nothing. ``kit_mount``: where the
    kit is seen instead (the swarm backend's runner volume holds it beside the socket).
    """
    url = env.get("SPACES_RUNNER_URL", "")
    if kit is None or not url.startswith("unix://"):
        return env, {}
    sock = Path(url[len("unix://"):])
    env = {**env, "SPACES_RUNNER_URL": f"unix://{RUNNER_MOUNT}/{sock.name}"}
    volumes = {str(sock.parent): {"bind": RUNNER_MOUNT, "mode": "ro"}}
    entries = [e for e in env.get("PYTHONPATH", "").split(":") if e]
    if str(kit) in entries:
        volumes[str(kit)] = {"bind": kit_mount, "mode": "ro"}
        inside = [kit_mount if e == str(kit) else e for e in entries]
        inside += [e for e in image_pythonpath.split(":") if e and e not in inside]
        env["PYTHONPATH"] = ":".join(inside)
    return env, volumes


def image_pythonpath(image_config: dict[str, Any]) -> str:
    """The PYTHONPATH an image's config sets, or "" (pure): the app's own entries stay behind the kit's."""
    return next((e.split("=", 1)[1] for e in image_config.get("Env") or [] if e.startswith("PYTHONPATH=")), "")


def container_config(spec: LaunchSpec, limits: Limits, *, network: str, volume: str, platform: str,
                     generation: int, runner_kit: Path | None = None,
                     image_pythonpath: str = "", workdir: str = "") -> dict[str, Any]:
    """keyword arguments for ``containers.run`` (pure). ``generation``: this launch's place in launch order (see
    GENERATION_LABEL). ``runner_kit``: the host's appkit directory when the model runner is enabled (see
    :func:`runner_mounts`). ``workdir``: the image's working directory, the app's folder.

    The root filesystem is read-only, but on Hugging Face an app may write into its own folder (Gradio's
    ``.gradio/`` for flagging and cached examples, downloads next to app.py). So the folder gets an anonymous
    volume of its own: the engine fills an empty volume with what the image holds at that path, owner included
    (uid 1000), so the app sees its code, writable, and what it writes lives and dies with this container, as
    on HF. The image itself stays read-only (site-packages included: no .pth planted for the next start)."""
    tmpfs_mb = max(64, limits.memory_bytes // MIB // 4)
    env, runner_volumes = runner_mounts(runtime_env(spec), runner_kit, image_pythonpath)
    config: dict[str, Any] = {
        "image": spec.image,
        "name": f"spaces-{_slug(spec.space_id)}-{uuid.uuid4().hex[:6]}",
        "detach": True,
        "environment": env,
        "labels": {SPACE_LABEL: spec.space_id, PLATFORM_LABEL: platform, PORT_LABEL: str(spec.app_port),
                   GENERATION_LABEL: str(generation)},
        "network": network,
        "user": "1000:1000",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={tmpfs_mb}m,mode=1777"},
        "volumes": {volume: {"bind": "/data", "mode": "rw"}, **runner_volumes},
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # no swap: past the limit is an OOM kill, not a slow crawl
        "nano_cpus": limits.nano_cpus,
        "pids_limit": limits.pids,
        "init": True,  # tini reaps zombies and passes SIGTERM on
        "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
    }
    if workdir.strip("/"):  # never over / (an image without WORKDIR): that would hide the whole image
        config["mounts"] = [Mount(target=workdir, source=None, type="volume")]
    if limits.gpus:
        config["device_requests"] = [DeviceRequest(count=limits.gpus, capabilities=[["gpu"]])]
    return config


def describe_exit(state: dict[str, Any], memory_label: str) -> ExitInfo:
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return ExitInfo(code=code, reason=f"out of memory (limit {memory_label})", oom=True)
    if state.get("Error"):
        return ExitInfo(code=code, reason=f"container failed: {state['Error']}")
    if code is not None and code > 128:
        return ExitInfo(code=code, reason=f"killed by signal {code - 128} (exit code {code})")
    return ExitInfo(code=code, reason=f"exited with code {code}")


def _started_at(container: Container) -> float:
    text = container.attrs.get("State", {}).get("StartedAt", "")
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    return time.time()


def detect_gpus(client: docker.DockerClient) -> int:
    """GPUs usable through device requests: NVIDIA device files and the nvidia runtime both present."""
    if "nvidia" not in (client.info().get("Runtimes") or {}):
        return 0
    return sum(1 for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit())


class DockerBackend:
    name = "docker"

    def __init__(self, settings: Settings, client: docker.DockerClient, *,
                 tiers: dict[str, Tier] | None = None, host_gpus: int | None = None) -> None:
        self.settings = settings
        self.client = client
        self.tiers = tiers or TIERS
        self._own_mounts = own_mounts(client)  # the platform image's case: it runs in a container of this engine
        # a digest of the data dir as the engine's host sees it: two platform containers keeping their data at
        # /data on two volumes are two platforms, and neither takes over or removes the other's apps
        self.platform = platform_id(host_path(Path(settings.data_dir).resolve(), self._own_mounts))
        self._host_gpus = host_gpus
        self._network_lock = threading.Lock()
        self._guarded = False
        self._generation_lock = threading.Lock()
        self._generation = 0
        self._pumps: dict[str, threading.Thread] = {}
        self._limits: dict[str, Limits] = {}
        self.data: DataDisks | None = None  # None: /data on named volumes (why: said once, here)
        reason = why_not(settings, self._own_mounts is not None, os.geteuid())
        if reason is None:
            self.data = DataDisks(settings)
        elif settings.sandbox_data_quota_mb > 0:
            note_volumes(reason)

    # --- the Backend protocol --------------------------------------------------------------------------
    async def launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        if not spec.image:
            raise BackendError(f"{spec.space_id}: no image to run (LaunchSpec.image is None); build it first")
        return await asyncio.to_thread(self._launch, spec, log)

    async def exited(self, instance: Instance) -> ExitInfo | None:
        return await asyncio.to_thread(self._exited, instance)

    async def stop(self, instance: Instance, grace_s: float) -> None:
        await asyncio.to_thread(self._stop, instance, grace_s)

    async def adopt(self) -> list[Instance]:
        return await asyncio.to_thread(self._adopt)

    # --- beyond the protocol -----------------------------------------------------------------------------
    def attach_logs(self, instance: Instance, log: LogSink) -> None:
        """Follow an adopted container's output from now on into ``log`` (adopt has no log sink)."""
        container = self._container(instance.backend_ref)
        if container is not None:
            self._pump(container, log, since=int(time.time()))

    def limits(self, hardware: str) -> Limits:
        info = self.client.info()
        if self._host_gpus is None:
            self._host_gpus = detect_gpus(self.client)
        limits = limits_for(hardware, self.tiers, int(info["NCPU"]), int(info["MemTotal"]), self._host_gpus)
        return under_ceilings(limits, self.settings)

    def volume_name(self, space_id: str) -> str:
        return f"spaces-{self.platform}-{_slug(space_id)}-data"

    def held(self, space_id: str) -> str | None:
        return None  # nothing here stops an app on purpose without the supervisor

    async def remove_data(self, space_id: str) -> None:
        await asyncio.to_thread(self.remove_volume, space_id)

    def remove_volume(self, space_id: str) -> None:
        """For deletes: the app's /data goes with it (its disk, and its volume of before the disks)."""
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(self.volume_name(space_id)).remove(force=True)
        if self.data is not None:
            self.data.remove(space_id)

    def unmount_idle(self) -> None:
        """/data disks that no running container of this platform holds are unmounted."""
        if self.data is not None:
            running = self.client.containers.list(filters={"label": f"{PLATFORM_LABEL}={self.platform}"})
            self.data.unmount_idle(c.labels.get(SPACE_LABEL, "") for c in running)

    # --- blocking work -----------------------------------------------------------------------------------
    def _launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        limits = self.limits(spec.hardware)
        tier = self.tiers[spec.hardware]
        if tier.gpus > limits.gpus:
            log(f"warning: hardware {spec.hardware} asks for {tier.gpus} GPU(s); this host has "
                f"{limits.gpus} usable through Docker, so the app runs without")
        self._ensure_network()
        volume = self._data_for(spec.space_id)
        try:
            return self._run(spec, limits, volume, log)
        except BaseException:
            if self.data is not None:
                self.data.detach(spec.space_id)
            raise

    def _data_for(self, space_id: str) -> str:
        """/data's source: the space's disk (a host folder) or, without disks, its named volume."""
        if self.data is None:
            return self._ensure_volume(space_id)
        try:
            before = Path(self.client.volumes.get(self.volume_name(space_id)).attrs["Mountpoint"])
        except docker.errors.NotFound:
            before = None
        return str(self.data.attach(space_id, before))

    def _run(self, spec: LaunchSpec, limits: Limits, volume: str, log: LogSink) -> Instance:
        image = self._image_config(spec.image or "")
        config = container_config(spec, limits, network=self.settings.docker_network, volume=volume,
                                  platform=self.platform, generation=self._next_generation(),
                                  workdir=str(image.get("WorkingDir") or ""), **self._runner_args(spec, image))
        config["volumes"] = host_volumes(config["volumes"], self._own_mounts)
        log(f"$ docker run {spec.image} as {config['name']} (hardware {spec.hardware}: "
            f"{limits.nano_cpus / 1e9:g} CPU, {limits.memory_label} memory, {limits.pids} pids)")
        try:
            container = self.client.containers.run(**config)
        except docker.errors.DockerException as exc:
            raise BackendError(f"{spec.space_id}: the engine could not start {spec.image}: {exc}") from None
        container.reload()
        self._limits[container.id] = limits
        self._pump(container, log)
        return Instance(space_id=spec.space_id, upstream=self._upstream(container, spec.app_port),
                        backend_ref=container.id, started_at=_started_at(container))

    def _next_generation(self) -> int:
        """The clock in nanoseconds (so a restarted platform goes on counting upwards), strictly increasing
        within this process however close together two launches are."""
        with self._generation_lock:
            self._generation = max(time.time_ns(), self._generation + 1)
            return self._generation

    def _image_config(self, image: str) -> dict[str, Any]:
        """The image's Config (Env, WorkingDir, …); {} when the engine cannot say (the run then reports why)."""
        try:
            return dict(self.client.images.get(image).attrs.get("Config") or {})
        except docker.errors.DockerException:
            return {}

    def _runner_args(self, spec: LaunchSpec, image: dict[str, Any]) -> dict[str, Any]:
        """What :func:`runner_mounts` needs: the appkit's host directory and the image's own PYTHONPATH."""
        if not self.settings.runner_enabled or "SPACES_RUNNER_URL" not in spec.env:
            return {}
        from spaces_runtime.appkit.install import kit_dir

        return {"runner_kit": kit_dir(self.settings), "image_pythonpath": image_pythonpath(image)}

    def _upstream(self, container: Container, port: int) -> str:
        networks = container.attrs["NetworkSettings"]["Networks"]
        address = networks.get(self.settings.docker_network, {}).get("IPAddress")
        if not address:
            raise BackendError(f"container {container.name} has no address on network "
                               f"{self.settings.docker_network}")
        return f"http://{address}:{port}"

    def _ensure_network(self) -> None:
        name = self.settings.docker_network
        with self._network_lock:
            if not self.client.networks.list(names=[name]):
                with contextlib.suppress(docker.errors.APIError):  # another platform created it just now
                    self.client.networks.create(
                        name, driver="bridge", check_duplicate=True, labels={"spaces-runtime.network": "1"},
                        options={"com.docker.network.bridge.enable_icc": "false"})
            if not self._guarded:
                self._guarded = True
                self._guard(self.client.networks.get(name))

    def _guard(self, network: Network) -> None:
        """Apps reach the internet but not private, link-local (the cloud's metadata service) or shared
        addresses: the same rule as the process sandbox's, in the engine's DOCKER-USER chain. Only possible when
        the platform shares the engine's host network namespace as root; otherwise it says so, once."""
        interface = (network.attrs.get("Options") or {}).get("com.docker.network.bridge.name") or \
            f"br-{network.id[:12]}"
        allowed = tuple(c.strip() for c in self.settings.sandbox_private_outbound.split(",") if c.strip())
        try:
            if not Path(f"/sys/class/net/{interface}").exists():
                raise BackendError(f"the network's bridge {interface} is not in this network namespace")
            guard_containers(interface, allowed)
        except (BackendError, OSError) as exc:
            log.warning("apps on the docker backend can reach private addresses (the LAN, the cloud's metadata "
                        "service): %s. Add the rules of spaces_runtime.sandbox.network.container_guard_rules on "
                        "the engine's host.", exc)

    def _ensure_volume(self, space_id: str) -> str:
        name = self.volume_name(space_id)
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            self.client.volumes.create(name, labels={SPACE_LABEL: space_id, PLATFORM_LABEL: self.platform})
        return name

    def _container(self, ref: str) -> Container | None:
        try:
            return self.client.containers.get(ref)
        except docker.errors.NotFound:
            return None

    def _exited(self, instance: Instance) -> ExitInfo | None:
        container = self._container(instance.backend_ref)
        if container is None:
            return ExitInfo(code=None, reason="the container is gone (removed outside the platform)")
        state = container.attrs["State"]
        if state.get("Status") in ("created", "running", "paused", "restarting"):
            return None
        pump = self._pumps.get(container.id)
        if pump is not None:
            pump.join(_DRAIN_S)  # the last lines (often a traceback) before anyone reads the exit
        limits = self._limits.get(container.id)
        memory = limits.memory_label if limits else _memory_label(container)
        return describe_exit(state, memory)

    def _stop(self, instance: Instance, grace_s: float) -> None:
        container = self._container(instance.backend_ref)
        if container is None:
            return
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.stop(timeout=max(0, round(grace_s)))
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)  # v: its app-folder volume too
        if self.data is not None:
            self.data.detach(instance.space_id)
        pump = self._pumps.pop(container.id, None)
        if pump is not None:
            pump.join(_DRAIN_S)
        self._limits.pop(container.id, None)

    def _adopt(self) -> list[Instance]:
        """This platform's running containers, newest per space; dead ones and duplicates are removed."""
        found = self.client.containers.list(all=True, filters={"label": f"{PLATFORM_LABEL}={self.platform}"})
        by_space: dict[str, list[Container]] = defaultdict(list)
        for container in found:
            by_space[container.labels.get(SPACE_LABEL, "")].append(container)
        adopted = []
        for space_id, containers in by_space.items():
            running = sorted((c for c in containers if c.status == "running"), key=_launch_order, reverse=True)
            keep = running[0] if running and space_id else None
            for container in containers:
                if container is not keep:
                    with contextlib.suppress(docker.errors.NotFound):
                        container.remove(force=True, v=True)  # v: its app-folder volume too
            if keep is not None:
                port = int(keep.labels.get(PORT_LABEL, "7860"))
                adopted.append(Instance(space_id=space_id, upstream=self._upstream(keep, port),
                                        backend_ref=keep.id, started_at=_started_at(keep)))
        if self.data is not None:
            self.data.unmount_idle(i.space_id for i in adopted)
            self.data.adopted(i.space_id for i in adopted)
        return adopted

    def _pump(self, container: Container, log: LogSink, since: int | None = None) -> None:
        thread = threading.Thread(target=_pump_logs, args=(container, log, since), daemon=True,
                                  name=f"logs-{container.name}")
        self._pumps[container.id] = thread
        thread.start()


def _launch_order(container: Container) -> tuple[int, str]:
    """The generation label; containers launched before it existed come first, by creation time."""
    label = container.labels.get(GENERATION_LABEL, "")
    return int(label) if label.isdigit() else 0, container.attrs.get("Created", "")


def _memory_label(container: Container) -> str:
    memory = int(container.attrs.get("HostConfig", {}).get("Memory") or 0)
    return Limits(0, memory, 0, 0).memory_label if memory else "none"


def _pump_logs(container: Container, log: LogSink, since: int | None) -> None:
    """The engine's stdout and stderr of the container, line by line, until it stops."""
    pending = b""
    try:
        stream = container.logs(stream=True, follow=True, stdout=True, stderr=True,
                                **({"since": since} if since else {}))
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                log(line.decode("utf-8", errors="replace").rstrip("\r"))
    except (docker.errors.DockerException, OSError) as exc:
        log(f"[log stream ended: {exc}]")
    if pending:
        log(pending.decode("utf-8", errors="replace"))
