"""The model runner on the swarm backend: a global service on the runner nodes, one runner per node.

Where runners go is ``swarm.runnerplace`` (every ready GPU node, else the manager), marked by the node label
RUNNER_LABEL that the service is constrained to. Each runner task keeps its socket in the node's own local volume
``spaces-{platform}-runner``; an app that calls runner models is constrained to the same label and mounts that
volume read-only at /run/spaces-runner, so it reaches the runner of its own node and cross-app batching works per
node, as on one host (the client it imports comes as Docker configs, ``swarm.kit``). Every node's engine has its
own local volumes, so the volume is node-local even where the nodes share a filesystem (the test cluster's do).

Identity is the embedded runner's: app tokens are signed with the platform's ``runner.secret``, which reaches the
runners as a Docker secret (a file in their tmpfs /run/secrets, never in the spec) and the apps' tokens as Docker
secrets too. The platform's control calls (model uploads at deploy, ``/api/models``, ``/metrics``) go to each
runner's TCP edge, published in host mode on its node at ``Settings.swarm_runner_port``, with the admin token; that
edge answers nothing without a token, like the socket.

The image is built on the manager from this package and the runner's dependencies pinned to what this platform's
environment holds (``builder.docker.runner``), pushed to the platform's registry and run by digest, or named by
``Settings.swarm_runner_image``. Bringing the service up happens in the background at start: the platform serves
meanwhile, and a deploy that needs a runner waits for it (``prepare``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import EndpointSpec, Healthcheck, Mount, RestartPolicy, SecretReference, ServiceMode

from builder.spec import AppSpec
from spaces_runtime.client import Runner
from spaces_runtime.config import Settings
from spaces_runtime.errors import RunnerError, SpacesError, UnknownModelError
from spaces_runtime.logs import LogSink
from spaces_runtime.runner.metrics import prometheus_fleet
from spaces_runtime.runner.tokens import ADMIN, app_token, read_secret
from spaces_runtime.swarm.nodes import Nodes
from spaces_runtime.swarm.runnerplace import (
    RUNNER_CONSTRAINT,
    RUNNER_LABEL,
    RUNNER_MOUNT,
    SOCKET,
    runner_nodes,
    socket_volume,
)
from spaces_runtime.swarm.service import NANO, http_check

log = logging.getLogger("spaces_runtime")

STATE_DIR = "/var/lib/spaces-runner"  # uploaded models, in a second node-local volume
SECRET_FILE = "runner.secret"  # at /run/secrets/
RUNNER_OF_LABEL = "spaces-runtime.runner-of"  # not PLATFORM_LABEL: `spaces nodes drain` moves apps, not runners
LIST_TIMEOUT_S = 5.0  # a listing leaves out a runner that does not answer by then
READY_WAIT_S = 900.0  # the first start builds the image: minutes
POLL_S = 1.0
PushImage = Callable[[str, LogSink], str]  # a local image → its digest in the platform's registry


def service_name(platform: str) -> str:
    return f"spaces-{platform}-runner"


def runner_args(settings: Settings, port: int) -> list[str]:
    """The runner's command line inside its task (the image's entrypoint is ``python -m spaces_runtime.runner``)."""
    return ["--data-dir", STATE_DIR, "--socket", SOCKET, "--secret-file", f"/run/secrets/{SECRET_FILE}",
            "--tcp-host", "0.0.0.0", "--tcp-port", str(port),
            "--device", settings.runner_device,
            "--budget-mb", str(settings.runner_memory_budget_mb), "--max-batch", str(settings.runner_max_batch),
            "--max-delay-ms", str(settings.runner_max_delay_ms), "--max-queue", str(settings.runner_max_queue),
            "--max-queue-per-app", str(settings.runner_max_queue_per_app),
            "--max-payload-mb", str(settings.runner_max_payload_mb)]


def service_config(settings: Settings, *, image: str, platform: str, secret: SecretReference) -> dict[str, Any]:
    """Keyword arguments for ``client.services.create`` / ``Service.update`` of the runner's global service
    (pure). Root without capabilities on a read-only root: it owns its volumes, and nothing else."""
    port = settings.swarm_runner_port
    labels = {RUNNER_OF_LABEL: platform}
    return {
        "image": image, "name": service_name(platform), "labels": labels, "container_labels": labels,
        "args": runner_args(settings, port), "user": "0:0", "cap_drop": ["ALL"], "read_only": True, "init": True,
        "env": ["HOME=/tmp", "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1"],
        "mounts": [Mount(RUNNER_MOUNT, socket_volume(platform), type="volume", labels=labels),
                   Mount(STATE_DIR, f"{socket_volume(platform)}-state", type="volume", labels=labels),
                   Mount("/tmp", None, type="tmpfs", tmpfs_size=512 * 2**20)],
        "secrets": [secret], "mode": ServiceMode("global"), "constraints": [RUNNER_CONSTRAINT],
        "restart_policy": RestartPolicy(condition="any", delay=NANO, max_attempts=0, window=0),
        "endpoint_spec": EndpointSpec(mode="dnsrr", ports=[{"Protocol": "tcp", "TargetPort": port,
                                                            "PublishedPort": port, "PublishMode": "host"}]),
        # a 401 without a token is an answer: it is up
        "healthcheck": Healthcheck(test=http_check("python", port, "/v1/status", ""), interval=2 * NANO,
                                   timeout=4 * NANO, retries=3, start_period=120 * NANO),
        "log_driver": "json-file", "log_driver_options": {"max-size": "10m", "max-file": "2"},
    }


def label_changes(labels_of: dict[str, dict[str, str]], runners: set[str]) -> dict[str, dict[str, str]]:
    """node name → its new labels, for the nodes whose RUNNER_LABEL must change (pure)."""
    changes = {}
    for name, labels in labels_of.items():
        want = "1" if name in runners else "0"
        if labels.get(RUNNER_LABEL) != want:
            changes[name] = {**labels, RUNNER_LABEL: want}
    return changes


class RunnerFleet:
    """The runners of a swarm, as the platform sees its one embedded runner: start, stop, models, metrics and
    the deploy's model preparation."""

    def __init__(self, settings: Settings, client: docker.DockerClient, platform: str, push: PushImage,
                 build_image: Callable[[LogSink], str]) -> None:
        self.settings, self.client, self.platform = settings, client, platform
        self.push, self.build_image = push, build_image
        self.secret = read_secret(Path(settings.data_dir) / "runner.secret")
        self.admin_token = app_token(self.secret, ADMIN)
        self._up: asyncio.Task[None] | None = None
        self.problem: str | None = None  # why the service is not up, once bringing it up failed

    # --- what the platform calls ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._up = asyncio.create_task(asyncio.to_thread(self._bring_up))

    async def stop(self) -> None:
        """The service stays: apps on the swarm keep running without the platform, and call their runners."""
        if self._up is not None and not self._up.done():
            self._up.cancel()

    def models(self) -> list[dict[str, Any]]:
        """Every runner's models, each with the node it is on."""
        return [{**model, "node": node} for node, runner in self._runners(LIST_TIMEOUT_S)
                for model in _quiet(runner.models, [])]

    def metrics_text(self) -> str:
        snaps = {node: snap for node, runner in self._runners(LIST_TIMEOUT_S)
                 if (snap := _quiet(runner.metrics, None))}
        return prometheus_fleet(snaps) if snaps else ""

    async def prepare(self, spec: AppSpec, app_dir: Path) -> list[str]:
        """At deploy: the README's model files go to every runner, then its runner models load on each."""
        await self.ready()
        return await asyncio.to_thread(self._prepare, spec, app_dir)

    async def ready(self, timeout_s: float = READY_WAIT_S) -> None:
        """Once the service is up and at least one runner answers; raises RunnerError saying why not."""
        if self._up is None:
            raise RunnerError("the swarm's runners were never started")
        try:
            await asyncio.wait_for(asyncio.shield(self._up), timeout_s)
        except TimeoutError:
            raise RunnerError(f"the runner service is not up after {timeout_s:g} s (its image may still build)",
                              hint="see the platform's log") from None
        if self.problem is not None:
            raise RunnerError(f"the runner service could not start: {self.problem}")
        deadline = time.monotonic() + timeout_s
        while not any(_quiet(r.status, None) for _, r in self._runners(LIST_TIMEOUT_S)):
            if time.monotonic() > deadline:
                raise RunnerError(f"no runner task answered in {timeout_s:g} s",
                                  hint=f"docker service ps {service_name(self.platform)}")
            await asyncio.sleep(POLL_S)

    # --- blocking work ---------------------------------------------------------------------------------------
    def _bring_up(self) -> None:
        try:
            self._label_nodes()
            image = self.settings.swarm_runner_image or self.push(self.build_image(_log_line), _log_line)
            config = service_config(self.settings, image=image, platform=self.platform, secret=self._secret())
            existing = _service(self.client, service_name(self.platform))
            if existing is None:
                self.client.services.create(**config)
            else:
                existing.update(**config)
            log.info("model runner: global service %s on the nodes labelled %s=1 (%s)", config["name"],
                     RUNNER_LABEL, image)
        except (SpacesError, docker.errors.DockerException) as exc:
            self.problem = str(exc)
            log.error("model runner: the swarm's runner service did not start: %s", exc)

    def _label_nodes(self) -> None:
        """RUNNER_LABEL=1 on the nodes runnerplace picks, 0 on the others."""
        runners = runner_nodes(Nodes(self.client, self.platform).views())
        nodes = {n.attrs["Description"]["Hostname"]: n for n in self.client.nodes.list()}
        labels_of = {name: dict(n.attrs["Spec"].get("Labels") or {}) for name, n in nodes.items()}
        for name, labels in label_changes(labels_of, runners).items():
            node = nodes[name]
            for attempt in (0, 1):  # a drain may update the node meanwhile: "update out of sequence", once
                try:
                    node.update({**node.attrs["Spec"], "Labels": {**(node.attrs["Spec"].get("Labels") or {}),
                                                                  RUNNER_LABEL: labels[RUNNER_LABEL]}})
                    break
                except docker.errors.APIError:
                    if attempt:
                        raise
                    node.reload()
        log.info("model runner: runner nodes %s", ", ".join(sorted(runners)) or "(none ready)")

    def _secret(self) -> SecretReference:
        """The signing key as a Docker secret, named by a digest of it (secrets are immutable)."""
        name = f"spaces-{self.platform}-runner-{hashlib.sha256(self.secret).hexdigest()[:12]}"
        found = self.client.secrets.list(filters={"name": name})
        secret_id = next((s.id for s in found if s.name == name), None) or self.client.secrets.create(
            name=name, data=self.secret, labels={RUNNER_OF_LABEL: self.platform}).id
        return SecretReference(secret_id, name, filename=SECRET_FILE, uid="0", gid="0", mode=0o400)

    def _runners(self, timeout_s: float = 120.0) -> list[tuple[str, Runner]]:
        """(node name, a client of the runner task there) for each running runner task."""
        service = _service(self.client, service_name(self.platform))
        if service is None:
            return []
        try:
            tasks = service.tasks(filters={"desired-state": "running"})
            nodes = {n.id: n.attrs for n in self.client.nodes.list()}
        except docker.errors.DockerException:
            return []
        found = []
        for task in tasks:
            node = nodes.get(task.get("NodeID", ""), {})
            address = node.get("Status", {}).get("Addr")
            if task.get("Status", {}).get("State") == "running" and address:
                url = f"http://{address}:{self.settings.swarm_runner_port}"
                found.append((node.get("Description", {}).get("Hostname", ""), Runner(url, token=self.admin_token,
                                                                                  timeout=timeout_s)))
        return sorted(found, key=lambda pair: pair[0])

    def _prepare(self, spec: AppSpec, app_dir: Path) -> list[str]:
        self._label_nodes()  # a GPU node that joined since gets its runner (its uploads: this app's, now)
        loaded: set[str] = set()
        for node, runner in self._runners():
            for model in spec.runner_models:
                options = {k: model[k] for k in ("task", "input_shape", "input_dtype", "labels") if k in model}
                runner.register(model["name"], app_dir / model["file"], **options)
            for name in [*spec.models, *(str(m["name"]) for m in spec.runner_models)]:
                with contextlib.suppress(UnknownModelError):  # a hub id the runner does not serve: the app's own
                    served = runner.load(str(name))["name"]
                    loaded.add(f"{served} on {node}")
        return sorted(loaded)


def _service(client: docker.DockerClient, name: str) -> Any:
    try:
        return client.services.get(name)
    except docker.errors.NotFound:
        return None


def _quiet(call: Callable[[], Any], default: Any) -> Any:
    """A runner that does not answer (its node is down, it restarts) leaves its share out of a listing."""
    try:
        return call()
    except (SpacesError, OSError):
        return default


def _log_line(line: str) -> None:
    log.info("model runner image: %s", line)
