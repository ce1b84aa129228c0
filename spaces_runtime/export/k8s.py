"""A space as Kubernetes manifests (pure): Deployment, Service, Ingress, Secret and a PersistentVolumeClaim.

The input is what the docker backend runs (``supervisor.docker``): the same image, the same environment
(``runtime_env``), the same hardening — uid 1000, every capability dropped, no privilege escalation, a read-only
root filesystem with a memory-backed /tmp and a persistent /data — and the same limits (the space's hardware tier
as caps) and readiness path (``sdk_eras``). What Kubernetes adds is said in ``Export.notes``, which the CLI prints
as the YAML's header.

Links: the path form ``/spaces/{owner}/{name}/`` and the host form ``{owner}-{name}.{host}`` (gateway.routes).
Gradio and Streamlit apps serve under the path prefix (GRADIO_ROOT_PATH, --server.baseUrlPath), docker and static
apps at /; the link that matches how the app serves is a portable Ingress, the other one needs its path rewritten,
which standard Ingress cannot say: that one is written for ingress-nginx (its rewrite-target annotation).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from builder.plan import BuildPlan
from spaces_runtime import sdk_eras
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.docker import runtime_env
from spaces_runtime.supervisor.labels import PORT_LABEL, SPACE_LABEL
from spaces_runtime.supervisor.tiers import Tier

Manifest = dict[str, Any]
MIB = 1024 * 1024
# Hugging Face's persistent storage tiers (README `suggested_storage`); every space here has a persistent /data
STORAGE_SIZES = {"small": "20Gi", "medium": "150Gi", "large": "1Ti"}
DEFAULT_STORAGE = "1Gi"
# what a scheduler reserves per app (requests): the measured idle memory with headroom (BENCHMARKS.md: Gradio
# ~110-140 MB PSS, Streamlit ~50 MB), a tenth of a CPU; the tier's figures are caps (limits), as in docker
REQUESTS_MB = {"gradio": 256, "streamlit": 128}
OTHER_REQUEST_MB = 128
REQUEST_CPU = "100m"
READY_PERIOD_S, READY_TIMEOUT_S = 5, 3
LIVE_PERIOD_S, LIVE_TIMEOUT_S, LIVE_FAILURES = 10, 5, 3  # supervisor.probes.LivenessPolicy's defaults
NGINX_CLASS = "nginx"
RUNNER_PREFIX = "SPACES_"  # appkit_env's names: the runner's address and token, the app's id for it
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_MAX_NAME = 52  # leaves room for "-secrets"/"-data"/"-path"/"-host" within a Service's 63


@dataclass(frozen=True)
class SpaceExport:
    """Everything the manifests are made of. ``env``: the container's plain environment (the space's identity,
    its variables, the SDK's paths), never a secret. ``secret_keys``: the names its Secret holds;
    ``secret_values``: their values, or None for empty placeholders. ``host``: the domain of the host link
    ("" for none). ``storage``: the /data claim's size (None: /data is an emptyDir that dies with the pod)."""

    space_id: str
    sdk: str
    sdk_version: str | None
    app_port: int
    image: str
    hardware: str
    tier: Tier
    env: Mapping[str, str]
    secret_keys: tuple[str, ...] = ()
    secret_values: Mapping[str, str] | None = None
    secrets_hidden: bool = False  # the caller may not see the space's secrets: the Secret names none
    host: str = ""
    storage: str | None = DEFAULT_STORAGE
    startup_timeout_s: float = 1800.0
    annotations: Mapping[str, str] = field(default_factory=dict)  # python version, env hash: for people


@dataclass(frozen=True)
class Export:
    manifests: list[Manifest]
    notes: list[str]


def from_launch(
    launch: LaunchSpec,
    plan: BuildPlan,
    tier: Tier,
    *,
    secret_keys: tuple[str, ...],
    secret_values: Mapping[str, str] | None,
    secrets_hidden: bool,
    host: str,
    storage: str | None,
) -> SpaceExport:
    """The export of what the docker backend would launch: its environment less the secrets (they come from the
    Secret) and less the model runner's address, token and appkit path, which only hold on the platform's host."""
    env = {
        key: value
        for key, value in runtime_env(launch).items()
        if key not in secret_keys and key != "PYTHONPATH" and not key.startswith(RUNNER_PREFIX)
    }
    # the app's own host link (Hugging Face's SPACE_HOST) is the cluster's, or none rather than the platform's
    link = host_name(launch.space_id, host)
    env.pop("SPACE_HOST", None)
    env |= {"SPACE_HOST": link} if link else {}
    return SpaceExport(
        space_id=launch.space_id,
        sdk=launch.sdk,
        sdk_version=launch.sdk_version,
        app_port=plan.app_port,
        image=launch.image or "",
        hardware=launch.hardware,
        tier=tier,
        env=env,
        secret_keys=secret_keys,
        secret_values=secret_values,
        secrets_hidden=secrets_hidden,
        host=host,
        storage=storage,
        startup_timeout_s=launch.startup_timeout_s,
        annotations={
            "spaces-runtime.python-version": plan.python_version,
            "spaces-runtime.env-hash": plan.env_hash[:12],
        },
    )


def storage_size(suggested: object, override: str | None) -> str | None:
    """The /data claim: ``override`` ("none" for no claim), else README's suggested_storage, else the default."""
    if override is not None:
        return None if override.lower() == "none" else override
    if isinstance(suggested, str) and suggested in STORAGE_SIZES:
        return STORAGE_SIZES[suggested]
    return DEFAULT_STORAGE


def resource_name(space_id: str) -> str:
    """A DNS-1035 label for the space ("alice/My_App" → "space-alice-my-app"); long ids keep a digest."""
    slug = re.sub(r"[^a-z0-9]+", "-", space_id.lower()).strip("-")
    name = f"space-{slug}"
    if len(name) > _MAX_NAME:
        name = f"{name[: _MAX_NAME - 7].rstrip('-')}-{hashlib.sha256(space_id.encode()).hexdigest()[:6]}"
    return name


def base_path(space_id: str) -> str:
    return f"/spaces/{space_id}"


def serves_under_prefix(sdk: str) -> bool:
    """gateway: Gradio and Streamlit expect /spaces/{owner}/{name} in front of their paths; others serve at /."""
    return sdk in ("gradio", "streamlit")


def render(space: SpaceExport) -> Export:
    manifests = [deployment(space), service(space), *ingresses(space), secret(space)]
    if space.storage is not None:
        manifests.append(claim(space))
    return Export(manifests=manifests, notes=notes(space))


def _meta(space: SpaceExport, suffix: str = "", **annotations: str) -> Manifest:
    name = resource_name(space.space_id)
    return {
        "name": f"{name}{suffix}",
        "labels": _labels(space),
        "annotations": {SPACE_LABEL: space.space_id, **annotations},
    }


def _labels(space: SpaceExport) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": resource_name(space.space_id),
        "app.kubernetes.io/component": space.sdk,
        "app.kubernetes.io/part-of": "spaces-runtime",
        "app.kubernetes.io/managed-by": "spaces-export",
    }


def _selector(space: SpaceExport) -> dict[str, str]:
    return {"app.kubernetes.io/name": resource_name(space.space_id)}


def deployment(space: SpaceExport) -> Manifest:
    pod: Manifest = {
        "automountServiceAccountToken": False,  # no API credentials in the app, as no Docker socket in docker
        "enableServiceLinks": False,  # the app's environment is the platform's, not every Service's address
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "runAsNonRoot": True,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(space)],
        "volumes": _volumes(space),
    }
    # a ReadWriteOnce claim attaches to one node: a rolling update could leave the new pod waiting for it
    strategy = {"type": "Recreate"} if space.storage is not None else {"type": "RollingUpdate"}
    annotations = {PORT_LABEL: str(space.app_port), "spaces-runtime.hardware": space.hardware, **space.annotations}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(space, **annotations),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector(space)},
            "strategy": strategy,
            "template": {"metadata": {"labels": _labels(space)}, "spec": pod},
        },
    }


def container(space: SpaceExport) -> Manifest:
    return {
        "name": "app",
        "image": space.image,
        "ports": [{"name": "http", "containerPort": space.app_port, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in sorted(space.env.items())],
        "envFrom": [{"secretRef": {"name": f"{resource_name(space.space_id)}-secrets"}}],  # env entries win
        "resources": resources(space),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "startupProbe": {
            **_probe(space),
            "periodSeconds": READY_PERIOD_S,
            "timeoutSeconds": READY_TIMEOUT_S,
            "failureThreshold": max(1, math.ceil(space.startup_timeout_s / READY_PERIOD_S)),
        },
        "readinessProbe": {
            **_probe(space),
            "periodSeconds": READY_PERIOD_S,
            "timeoutSeconds": READY_TIMEOUT_S,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            **_probe(space),
            "periodSeconds": LIVE_PERIOD_S,
            "timeoutSeconds": LIVE_TIMEOUT_S,
            "failureThreshold": LIVE_FAILURES,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}],
    }


def _probe(space: SpaceExport) -> Manifest:
    """The supervisor's readiness check (supervisor.probes): the SDK era's health path under the prefix, / for a
    static site; a docker app counts as up when it answers at all, which an HTTP probe (2xx/3xx only) would not
    say, so it gets a TCP check."""
    if serves_under_prefix(space.sdk):
        path = f"{base_path(space.space_id)}/{sdk_eras.health_path(space.sdk, space.sdk_version)}"
        return {"httpGet": {"path": path, "port": "http"}}
    if space.sdk == "static":
        return {"httpGet": {"path": "/", "port": "http"}}
    return {"tcpSocket": {"port": "http"}}


def resources(space: SpaceExport) -> Manifest:
    """The tier as limits (caps, like docker's), a modest request so a node packs many idle demos."""
    limits: dict[str, str] = {"cpu": f"{space.tier.cpus:g}", "memory": quantity(space.tier.memory_mb)}
    if space.tier.gpus:
        limits["nvidia.com/gpu"] = str(space.tier.gpus)
    request_mb = min(REQUESTS_MB.get(space.sdk, OTHER_REQUEST_MB), space.tier.memory_mb)
    return {"limits": limits, "requests": {"cpu": REQUEST_CPU, "memory": quantity(request_mb)}}


def quantity(mib: int) -> str:
    """Kubernetes' spelling of a size: 16Gi, 256Mi."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _volumes(space: SpaceExport) -> list[Manifest]:
    tmp_mb = max(64, space.tier.memory_mb // 4)  # docker's tmpfs size (container_config)
    data: Manifest = (
        {"persistentVolumeClaim": {"claimName": f"{resource_name(space.space_id)}-data"}}
        if space.storage is not None
        else {"emptyDir": {}}
    )
    return [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(tmp_mb)}}, {"name": "data", **data}]


def service(space: SpaceExport) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(space),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(space),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def host_link(space: SpaceExport) -> str | None:
    return host_name(space.space_id, space.host)


def host_name(space_id: str, host: str) -> str | None:
    """``{owner}-{name}.{host}`` when it is a DNS name Kubernetes accepts (no '_' or '.' in the id, no IP)."""
    if not host or re.fullmatch(r"[0-9.]+", host):
        return None
    label = space_id.replace("/", "-")
    if not _DNS_LABEL.fullmatch(label):
        return None
    name = f"{label}.{host}"
    return name if all(_DNS_LABEL.fullmatch(part) for part in name.split(".")) else None


def ingresses(space: SpaceExport) -> list[Manifest]:
    """The path link and, when the id makes a DNS name, the host link; the one whose paths differ from the
    app's own is rewritten by ingress-nginx."""
    prefix = base_path(space.space_id)
    under = serves_under_prefix(space.sdk)
    if under:  # /spaces/o/n/x as is; on the host link, x (or /spaces/o/n/x: the gateway accepts both) gets it
        path_rule = _rule(None, prefix, "Prefix")
        host_rewrite = (r"/(?:" + re.escape(prefix.lstrip("/")) + r"/?)?(.*)", f"{prefix}/$1")
    else:  # the app serves at /: the path link drops the prefix, the host link needs nothing
        path_rule = _rule(None, prefix + r"(/|$)(.*)", "ImplementationSpecific")
        host_rewrite = None
    found = [_ingress(space, "-path", path_rule, None if under else "/$2")]
    host = host_link(space)
    if host is not None:
        if host_rewrite is None:
            found.append(_ingress(space, "-host", _rule(host, "/", "Prefix"), None))
        else:
            found.append(
                _ingress(space, "-host", _rule(host, host_rewrite[0], "ImplementationSpecific"), host_rewrite[1])
            )
    return found


def _rule(host: str | None, path: str, path_type: str) -> Manifest:
    backend = {"service": {"name": None, "port": {"name": "http"}}}
    rule: Manifest = {"http": {"paths": [{"path": path, "pathType": path_type, "backend": backend}]}}
    return {"host": host, **rule} if host else rule


def _ingress(space: SpaceExport, suffix: str, rule: Manifest, rewrite: str | None) -> Manifest:
    annotations = {}
    spec: Manifest = {}
    if rewrite is not None:
        annotations = {
            "nginx.ingress.kubernetes.io/use-regex": "true",
            "nginx.ingress.kubernetes.io/rewrite-target": rewrite,
        }
        spec["ingressClassName"] = NGINX_CLASS
    # streams: Gradio's queue (SSE) and Streamlit's WebSocket stay open; ingress-nginx closes them at 60 s
    annotations |= {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    }
    for path in rule["http"]["paths"]:
        path["backend"]["service"]["name"] = resource_name(space.space_id)
    spec["rules"] = [rule]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(space, suffix, **annotations),
        "spec": spec,
    }


def secret(space: SpaceExport) -> Manifest:
    values = space.secret_values
    data = {key: (values or {}).get(key, "") for key in space.secret_keys}
    state = "none" if not space.secret_keys else "included" if values is not None else "placeholders"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(space, "-secrets", **{"spaces-runtime.secret-values": state}),
        "stringData": data,
    }


def claim(space: SpaceExport) -> Manifest:
    assert space.storage is not None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(space, "-data"),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": space.storage}}},
    }


def notes(space: SpaceExport) -> list[str]:
    """What a person applying the manifests must know, one sentence each."""
    name = resource_name(space.space_id)
    found = [
        f"image {space.image} must be in a registry the cluster can pull from "
        "(build it with `spaces build DIR`, then docker tag and push it, and pass --image)"
    ]
    if space.secrets_hidden:
        found.append(f"Secret {name}-secrets names no keys: only the space's writers see its secrets")
    elif space.secret_keys and space.secret_values is None:
        found.append(
            f"Secret {name}-secrets holds empty placeholders for {', '.join(space.secret_keys)}: fill "
            "them in before applying, or export with --secret-values"
        )
    elif space.secret_values is not None and space.secret_keys:
        found.append(f"Secret {name}-secrets holds the secrets' values: keep this file as secret as they are")
    if space.storage is None:
        found.append("/data is an emptyDir: what the app writes there goes with its pod")
    else:
        found.append(
            f"/data is a {space.storage} ReadWriteOnce claim on the cluster's default storage class "
            "(one pod at a time: the Deployment recreates rather than rolls)"
        )
    if serves_under_prefix(space.sdk) and host_link(space):
        found.append(
            f"Ingress {name}-host rewrites paths with ingress-nginx annotations; another controller "
            "needs its own rewrite to /spaces/OWNER/NAME/"
        )
    elif not serves_under_prefix(space.sdk):
        found.append(f"Ingress {name}-path strips /spaces/OWNER/NAME with ingress-nginx annotations")
    if space.host and host_link(space) is None:
        found.append(f"no host link: {space.space_id.replace('/', '-')}.{space.host} is not a DNS name")
    if space.tier.gpus:
        found.append("the nvidia.com/gpu limit needs NVIDIA's device plugin on the cluster")
    found.append(
        "the platform's model runner is not exported: apps that call it need one reachable in the "
        "cluster (SPACES_RUNNER_URL)"
    )
    return found


def to_yaml(export: Export) -> str:
    header = "".join(f"# {note}\n" for note in export.notes)
    body = yaml.safe_dump_all(
        export.manifests, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120
    )
    return f"# Kubernetes manifests rendered by `spaces export k8s`\n{header}---\n{body}"
