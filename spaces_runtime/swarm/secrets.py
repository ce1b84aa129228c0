"""A space's secrets as Docker secrets on the swarm backend, still seen by the app as environment variables.

As environment variables in a service's spec, secret values would be readable by anyone who may inspect services
on the manager (`docker service inspect`), kept in the swarm's raft log in the spec's plain JSON and in every
node's container configuration. A Docker secret is stored encrypted in the raft log and handed only to the nodes
that run one of its tasks, as a file in a tmpfs at /run/secrets/KEY (owned by the app's uid 1000, mode 0400).

Hugging Face apps read secrets from ``os.environ``, so the task's command is wrapped: a short POSIX shell loop
exports each /run/secrets file as a variable of its name (trailing newlines kept) and execs the image's own
entrypoint and command. Every SDK image has /bin/sh; a docker-SDK image without it gets its secrets as files only
(the build log says so).

A secret is immutable, so its name carries a digest of its value: a changed value is a new secret and a rolling
update moves the tasks to it; secrets no service uses any more are removed (``prune``).
"""

from __future__ import annotations

import contextlib
import hashlib
import re

import docker
import docker.errors
import docker.models.secrets
from docker.types import SecretReference

from spaces_runtime.errors import BackendError

SECRETS_DIR = "/run/secrets"
OWNER_LABEL = "spaces-runtime.secret-of"  # the space a secret belongs to
PLATFORM_LABEL = "spaces-runtime.platform"


def secret_name(platform: str, space_id: str, key: str, value: str) -> str:
    """spaces-{platform}-{space}-{key}-{digest of the value}, at most 64 characters (the Engine's limit) (pure)."""
    slug = re.sub(r"[^a-z0-9-]", "-", space_id.replace("/", "--").lower())
    digest = hashlib.sha256(f"{space_id}\0{key}\0{value}".encode()).hexdigest()[:12]
    head = f"spaces-{platform[:8]}-{slug}-{key.lower()}"[: 64 - len(digest) - 1]
    return f"{head}-{digest}"


def export_script(directory: str = SECRETS_DIR) -> str:
    """POSIX sh that exports each file of ``directory`` as a variable of its name, then execs "$@" (pure).
    ``printf x`` and ``%x`` keep a value's trailing newlines, which $(...) alone drops."""
    return (f'for f in {directory}/*; do [ -f "$f" ] || continue; v=$(cat "$f"; printf x); '
            'export "${f##*/}=${v%x}"; done; exec "$@"')


def wrapped_command(entrypoint: list[str] | None, cmd: list[str] | None) -> list[str]:
    """The service's command: the export loop, then the image's own entrypoint and command (pure)."""
    return ["/bin/sh", "-c", export_script(), "sh", *(entrypoint or []), *(cmd or [])]


class SwarmSecrets:
    def __init__(self, client: docker.DockerClient, platform: str) -> None:
        self.client = client
        self.platform = platform

    def references(self, space_id: str, values: dict[str, str]) -> list[SecretReference]:
        """One Docker secret per key (made when its value is new), as mounts for the space's tasks."""
        mine = {s.name: s for s in self._ours(space_id)}
        references = []
        for key, value in sorted(values.items()):
            name = secret_name(self.platform, space_id, key, value)
            found = mine.get(name)
            try:
                secret_id = found.id if found is not None else self.client.secrets.create(
                    name=name, data=value.encode(), labels={OWNER_LABEL: space_id, PLATFORM_LABEL: self.platform}).id
            except docker.errors.DockerException as exc:
                raise BackendError(f"{space_id}: the swarm refused its secret {key}: {exc}") from None
            references.append(SecretReference(secret_id, name, filename=key, uid="1000", gid="1000", mode=0o400))
        return references

    def image_command(self, image: str) -> tuple[list[str] | None, list[str] | None, bool]:
        """The image's entrypoint and command, and whether it has a /bin/sh to run the export loop in (looked up
        in a container created from it and never started)."""
        try:
            config = self.client.images.get(image).attrs.get("Config") or {}
            probe = self.client.containers.create(image, entrypoint=["/bin/sh"], network_disabled=True)
        except docker.errors.DockerException as exc:
            raise BackendError(f"cannot read the command of {image}: {exc}") from None
        try:
            probe.get_archive("/bin/sh")
            has_shell = True
        except docker.errors.NotFound:
            has_shell = False
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                probe.remove(force=True)
        return config.get("Entrypoint"), config.get("Cmd"), has_shell

    def prune(self, space_id: str | None = None) -> None:
        """Remove this platform's secrets no service uses (the Engine refuses to remove one in use: kept)."""
        for secret in self._ours(space_id):
            with contextlib.suppress(docker.errors.DockerException):
                secret.remove()

    def _ours(self, space_id: str | None) -> list[docker.models.secrets.Secret]:
        labels = [f"{PLATFORM_LABEL}={self.platform}"] + ([f"{OWNER_LABEL}={space_id}"] if space_id else [])
        try:
            return list(self.client.secrets.list(filters={"label": labels}))
        except docker.errors.DockerException:
            return []
