"""The app-side kit (the runner's client and the ``spaces`` shim) on every swarm node, as Docker configs.

On one host the kit is a directory mounted into containers (``supervisor.docker.runner_mounts``). A swarm task may
run on any node, and Hugging Face apps ``import spaces`` whether or not they call a runner, so each file of the kit
is a Docker config mounted read-only at its place under /opt/spaces-appkit: the swarm hands configs to whichever
node runs a task, from the manager's copy of this package. A config is immutable, so its name carries a digest of
its path and content; a platform of another version makes new ones, and those no service uses go (``prune``).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path

import docker
import docker.errors
from docker.types import ConfigReference

from spaces_runtime.errors import BackendError

KIT_MOUNT = "/opt/spaces-appkit"  # where the docker backend mounts the kit too
KIT_OF_LABEL = "spaces-runtime.kit-of"  # the platform a kit config belongs to


def config_name(platform: str, relative: str, data: bytes) -> str:
    """spaces-{platform}-kit-{digest of path and content}, well under the Engine's 64 characters (pure)."""
    digest = hashlib.sha256(relative.encode() + b"\0" + data).hexdigest()[:20]
    return f"spaces-{platform[:12]}-kit-{digest}"


def kit_files(kit: Path) -> dict[str, bytes]:
    """Path under the kit → content, for every file ``appkit.install.materialise`` wrote (not its .tmp files)."""
    return {str(p.relative_to(kit)): p.read_bytes() for p in sorted(kit.rglob("*"))
            if p.is_file() and p.suffix != ".tmp"}


class KitConfigs:
    def __init__(self, client: docker.DockerClient, platform: str, kit: Path) -> None:
        self.client, self.platform, self.kit = client, platform, kit
        self._references: list[ConfigReference] | None = None
        self._lock = threading.Lock()

    def references(self) -> list[ConfigReference]:
        """One config per kit file (made once, then found by name), as mounts for a task, readable by uid 1000."""
        with self._lock:  # launches run in threads side by side; the first makes the configs
            if self._references is None:
                have = {c.name: c.id for c in self._ours()}
                references = [self._reference(relative, data, have) for relative, data in kit_files(self.kit).items()]
                self.prune(keep={r["ConfigName"] for r in references})
                self._references = references
            return self._references

    def _reference(self, relative: str, data: bytes, have: dict[str, str]) -> ConfigReference:
        name = config_name(self.platform, relative, data)
        try:
            config_id = have.get(name) or self.client.configs.create(
                name=name, data=data, labels={KIT_OF_LABEL: self.platform}).id
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another platform process of this data dir made it just now
                raise BackendError(f"the swarm refused the app kit's config for {relative}: {exc}") from None
            config_id = self.client.configs.get(name).id
        return ConfigReference(config_id, name, filename=f"{KIT_MOUNT}/{relative}", uid="1000", gid="1000",
                               mode=0o444)

    def prune(self, keep: set[str]) -> None:
        """Kit configs of other versions that no service uses (the Engine refuses to remove one in use)."""
        for config in self._ours():
            if config.name not in keep:
                with contextlib.suppress(docker.errors.DockerException):
                    config.remove()

    def _ours(self) -> list[docker.models.configs.Config]:
        try:
            return list(self.client.configs.list(filters={"label": f"{KIT_OF_LABEL}={self.platform}"}))
        except docker.errors.DockerException:
            return []
