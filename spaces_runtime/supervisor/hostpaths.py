"""Bind-mount sources as the Docker Engine's host sees them, for a platform that itself runs in a container.

The platform image drives the host's engine through its socket, and the engine resolves a bind mount's source
on the HOST, not in the platform's container: ``/data/runner`` there is
``/var/lib/docker/volumes/spaces-data/_data/runner`` on the host. Left untranslated, the engine creates an
empty ``/data/runner`` on the host and the app gets no runner socket and no appkit. So the docker backend asks
the engine for its own container's mounts (found by the id in ``/proc/self/mountinfo``: Docker bind-mounts
``/etc/hostname`` and friends from ``.../containers/{id}/``) and maps each source through them. On the host,
or against an engine that does not run this process, paths are taken as they are.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors

from spaces_runtime.errors import BackendError

_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")


def own_container_id(mountinfo: str) -> str | None:
    """The id of the Docker container this process runs in, from its mount table (pure); None outside one."""
    match = _CONTAINER_ID.search(mountinfo)
    return match.group(1) if match else None


def host_source(path: str, mounts: list[dict[str, Any]]) -> str | None:
    """``path`` (ours) as the engine's host sees it (pure): under the deepest of ``mounts`` (``docker inspect``'s
    Mounts) whose Destination holds it, that mount's Source plus the rest; None when no mount holds it."""
    wanted = PurePosixPath(path)
    for mount in sorted(mounts, key=lambda m: len(m.get("Destination", "")), reverse=True):
        dest = PurePosixPath(mount.get("Destination", "/nonexistent"))
        if (wanted == dest or dest in wanted.parents) and mount.get("Source"):
            return str(PurePosixPath(mount["Source"]) / wanted.relative_to(dest))
    return None


def host_path(path: Path, mounts: list[dict[str, Any]] | None) -> Path:
    """``path`` as the engine's host sees it; unchanged on the host (``mounts`` None) or under no mount."""
    found = host_source(str(path), mounts) if mounts is not None else None
    return Path(found) if found else path


def own_mounts(client: docker.DockerClient) -> list[dict[str, Any]] | None:
    """This process's container's mounts when ``client``'s engine runs it; None on the host or elsewhere."""
    with contextlib.suppress(OSError):
        found = own_container_id(Path("/proc/self/mountinfo").read_text())
        if found is not None:
            with contextlib.suppress(docker.errors.NotFound):
                return list(client.containers.get(found).attrs.get("Mounts") or [])
    return None


def host_volumes(volumes: dict[str, dict[str, str]], mounts: list[dict[str, Any]] | None
                 ) -> dict[str, dict[str, str]]:
    """``containers.run``'s volumes with every bind source (an absolute path; named volumes stay) made the host's."""
    if mounts is None:
        return volumes
    seen: dict[str, dict[str, str]] = {}
    for source, bind in volumes.items():
        if not source.startswith("/"):
            seen[source] = bind
            continue
        on_host = host_source(source, mounts)
        if on_host is None:
            raise BackendError(f"{source} lies inside the platform's container, where the Docker Engine cannot "
                               f"mount it into apps (it is on no volume of the container)",
                               hint="run the platform image with its data dir on a volume: -v spaces-data:/data")
        seen[on_host] = bind
    return seen
