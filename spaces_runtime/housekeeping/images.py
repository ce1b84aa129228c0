"""The docker side of housekeeping: the platform's app and SDK images, and the engine's build cache.

An app image carries labels naming the env hash and code hash it was built from and the SDK image under it
(``builder.docker.build``), so a space's record says which image it needs. The base image is never collected:
bootstrapping it again needs Debian's mirrors and takes a while. An image that is also tagged outside the
platform's repositories is someone else's too, and left alone. The engine itself refuses to remove an image a
container was created from; that is checked first all the same, so the report can say why it stayed.

Build cache is the engine's, shared with every build on it: only records no build holds and that share nothing
with an image are items, and ``spaces gc`` leaves those used within ``gc_cache_idle_s``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import docker
import docker.errors

from builder.docker.build import CODE_LABEL, ENV_LABEL, KIND_LABEL, SDK_LABEL
from builder.docker.render import APP_REPO, SDK_REPO
from spaces_runtime.errors import BackendError
from spaces_runtime.housekeeping.gc import Item, Kind

_KINDS: dict[str, Kind] = {"app": "image", "sdk": "sdk-image"}


class DockerImages:
    def __init__(self, client: docker.DockerClient, repos: tuple[str, ...] = (APP_REPO, SDK_REPO),
                 build_cache: bool = True) -> None:
        self.client = client
        self.repos = repos
        self.build_cache = build_cache

    def survey(self) -> tuple[list[Item], frozenset[str]]:
        """The platform's images and the engine's build cache, and the ids of images containers were made from."""
        try:
            usage = self.client.df()
            containers = self.client.api.containers(all=True)
        except docker.errors.DockerException as exc:
            raise BackendError(f"the Docker Engine did not say what it holds ({exc})") from None
        items = [item for image in usage.get("Images") or [] if (item := self._image(image)) is not None]
        if self.build_cache:
            items += [item for record in usage.get("BuildCache") or [] if (item := _cache(record)) is not None]
        return items, frozenset(str(c.get("ImageID") or "") for c in containers)

    def _image(self, image: dict[str, Any]) -> Item | None:
        tags = list(image.get("RepoTags") or [])
        ours = tuple(t for t in tags if t.rsplit(":", 1)[0] in self.repos)
        labels = image.get("Labels") or {}
        kind = _KINDS.get(labels.get(KIND_LABEL, ""))
        if not ours or len(ours) != len(tags) or kind is None:
            return None
        shared = int(image.get("SharedSize") or 0)
        unique = int(image.get("Size") or 0) - max(0, shared)
        return Item(kind, ours[0], max(0, unique), float(image.get("Created") or 0), env_hash=labels.get(ENV_LABEL),
                    code_hash=labels.get(CODE_LABEL), sdk_image=labels.get(SDK_LABEL), image_id=str(image["Id"]),
                    names=ours)

    def remove(self, item: Item) -> int:
        """Bytes freed; RuntimeError naming the engine's refusal (a container made from it since, say)."""
        if item.kind == "build-cache":
            try:
                done = self.client.api.prune_builds(filters={"id": item.key}, all=True)
            except docker.errors.APIError as exc:
                raise RuntimeError(f"the engine kept it: {exc.explanation or exc}") from None
            return int((done or {}).get("SpaceReclaimed") or 0)
        for name in item.names or (item.key,):
            try:
                self.client.images.remove(name)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError as exc:
                raise RuntimeError(f"the engine kept it: {exc.explanation or exc}") from None
        return item.bytes


def _cache(record: dict[str, Any]) -> Item | None:
    if record.get("Shared"):
        return None  # its bytes belong to an image's layers too: removing it frees nothing
    used = _epoch(str(record.get("LastUsedAt") or record.get("CreatedAt") or ""))
    return Item("build-cache", str(record["ID"]), int(record.get("Size") or 0), used, in_use=bool(record.get("InUse")))


def _epoch(stamp: str) -> float:
    """The engine's RFC 3339 time with nanoseconds (Python reads six digits at most); 0 when missing."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", stamp)
    if not match:
        return 0.0
    fraction = (match.group(2) or ".0")[:7]
    zone = match.group(3) or "Z"
    return datetime.fromisoformat(f"{match.group(1)}{fraction}{'+00:00' if zone == 'Z' else zone}").timestamp()
