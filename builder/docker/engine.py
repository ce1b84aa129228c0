"""Reaching the Docker Engine: the docker SDK for everything but builds, a BuildKit-capable CLI for builds.

Why both: builds need BuildKit secrets (the CA bundle and index URLs must reach pip/uv without landing in a
layer), and secrets travel over BuildKit's session protocol, which the docker SDK does not speak. The CLI does:
either ``docker buildx build`` or, with no buildx plugin, a pre-23 client (Debian's docker.io ships 20.10) with
``DOCKER_BUILDKIT=1``. Everything else (inspect, run, logs, events) goes through the SDK's typed API.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

import docker
import docker.errors

from spaces_runtime.errors import BackendError, BuildError

# Debian's docker.io puts its (BuildKit-capable, pre-buildx) client here; a newer client on PATH may lack buildx
_DEBIAN_CLI = "/usr/bin/docker"
_INSTALL_HINT = "install and start it with scripts/install-docker.sh"


def connect(environ: Mapping[str, str] | None = None) -> docker.DockerClient:
    """A client for the engine at DOCKER_HOST (default: the local socket); BackendError when none answers."""
    try:
        client = docker.from_env(environment=dict(environ) if environ is not None else None, timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise BackendError(f"the Docker Engine does not answer ({exc})", hint=_INSTALL_HINT) from None
    return client


@dataclass(frozen=True)
class BuildCli:
    """How to run a BuildKit build: ``argv + [options…, context]`` with ``env`` added to the environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    docker: str = "docker"  # the client binary, for other CLI calls (import)


def _runs(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def find_build_cli() -> BuildCli:
    """The first docker client that can build with BuildKit secrets; BuildError naming what was tried."""
    candidates = list(dict.fromkeys(c for c in (shutil.which("docker"), _DEBIAN_CLI) if c))
    for cli in candidates:
        if _runs([cli, "buildx", "version"]) is not None:
            return BuildCli([cli, "buildx", "build", "--load"], docker=cli)
        version = _runs([cli, "version", "--format", "{{.Client.Version}}"]) or ""
        major = version.split(".")[0]
        if major.isdigit() and int(major) < 23:
            return BuildCli([cli, "build"], {"DOCKER_BUILDKIT": "1"}, docker=cli)
    tried = ", ".join(candidates) or "no docker client on PATH"
    raise BuildError(f"no docker client here can build with BuildKit (tried: {tried})",
                     hint="install the buildx plugin (docker-buildx) or Debian's docker.io client")


def image_id(client: docker.DockerClient, name: str) -> str | None:
    """The local image's id, or None: find before build."""
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None


def layers(client: docker.DockerClient, name: str) -> list[str]:
    """The image's filesystem layer digests, base first: equal prefixes mean reused layers."""
    return list(client.images.get(name).attrs["RootFS"]["Layers"])
