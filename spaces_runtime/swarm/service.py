"""The pure half of the swarm backend (``supervisor.swarm``): a space's service spec, and what its tasks say.

Why the spec looks as it does (host-mode ports, dnsrr, SIGWINCH with a DRAIN_S grace, start-first updates) is in
``supervisor.swarm``'s docstring.
"""

from __future__ import annotations

import re
from typing import Any

from docker.types import (
    EndpointSpec,
    Healthcheck,
    Mount,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)

from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.docker import runtime_env
from spaces_runtime.supervisor.labels import GENERATION_LABEL, PLATFORM_LABEL, SPACE_LABEL
from spaces_runtime.supervisor.probes import readiness_path
from spaces_runtime.supervisor.tiers import MIB, Limits

DRAIN_S = 3.0  # a task told to stop keeps answering this long (its stop signal is one Python apps ignore)
NANO = 1_000_000_000
GPU_LABEL = "spaces-runtime.gpus"  # a node label: how many GPUs its engine reports (swarm.nodes.label_gpus)


def service_name(space_id: str) -> str:
    """alice/My_App → spaces-alice--my-app (swarm: letters, digits and dashes, at most 63)."""
    slug = re.sub(r"[^a-z0-9-]", "-", space_id.replace("/", "--").lower())
    return f"spaces-{slug}"[:63].rstrip("-")


# A health check is a process the engine starts inside the task at every interval (2 s, for quick rolling updates;
# Engine 20.10 has no separate start interval): Python without site and with nothing but socket imported costs
# about 0.02 CPU-s here where urllib.request's imports cost 0.12 (2 vCPUs, measured), one per task every 2 s.
# argv: the port, the path, the status that counts as healthy ("" for any answer at all).
HTTP_CHECK = """import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 3)
s.settimeout(3)
s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
head = b""
while b"\\r\\n" not in head and len(head) < 512:
    more = s.recv(512)
    if not more:
        break
    head += more
status = head.split(b"\\r\\n", 1)[0].split(None, 2)[1:2]  # "HTTP/1.1 200 OK", or "HTTP/1.1 200" with no reason
sys.exit(0 if status and sys.argv[3].encode() in (b"", status[0]) else 1)
"""


def http_check(python: str, port: int, path: str, healthy_status: str) -> list[str]:
    """The health check command: GET ``path`` on the task's own ``port`` (HTTP/1.0, so the answer's status line
    is all it reads); healthy when the status is ``healthy_status``, or when anything answers if it is ""."""
    return ["CMD", python, "-I", "-S", "-c", HTTP_CHECK, str(port), path, healthy_status]


def health_test(spec: LaunchSpec) -> list[str] | None:
    """The readiness probe (200 at the SDK's readiness path) run inside the task with the image's own Python; None
    for a docker-SDK app (its image may have no Python; the supervisor's probe from outside still decides when it
    is ready)."""
    if spec.sdk not in ("gradio", "streamlit"):
        return None
    return http_check("python3", spec.app_port, readiness_path(spec), "200")


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
