"""Each container's /data with a quota: the process sandbox's disk images (``sandbox.disks``, one sparse ext4 image
per space, SPACES_SANDBOX_DATA_QUOTA_MB), loop-mounted on the host and bind-mounted into the container, so an app
that fills /data gets ENOSPC at its quota instead of filling the engine's disk (a named volume has no limit).

Only where the platform runs on the engine's host, as root: the engine resolves a bind source in the host's mount
namespace, and a platform in a container mounts in its own (and usually may not mount at all). There /data stays
the named volume of before, and the log says so once.

A container outlives a platform that stops (the next one adopts it), and so does its disk's mount: the mount is
the kernel's, not the process's. The next platform counts it as in use again when it adopts the container
(``adopted``), and unmounts only what no running container of its own holds (``unmount_idle``): never a second
mount of one image, which would corrupt it. A space's /data on a named volume from before is copied onto its new
disk the first time (the volume stays until the space is deleted).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.sandbox.disks import Disks, mounts_under

log = logging.getLogger("spaces_runtime")

APP_UID = 1000  # the containers' user (HF's), who owns /data


def slug(space_id: str) -> str:
    return space_id.replace("/", "--").lower()


def why_not(settings: Settings, in_container: bool, euid: int) -> str | None:
    """Why /data cannot be a disk of its own here (pure); None when it can."""
    if settings.sandbox_data_quota_mb <= 0:
        return "SPACES_SANDBOX_DATA_QUOTA_MB is 0"
    if in_container:
        return ("the platform runs in a container: a disk it mounted would be invisible to the engine (which "
                "mounts bind sources from the host's namespace)")
    if euid != 0:
        return f"the platform runs as uid {euid}, and mounting a disk needs root"
    return None


class DataDisks:
    """The spaces' /data disks of one docker platform, under its data dir's ``docker-data/``."""

    def __init__(self, settings: Settings) -> None:
        root = Path(settings.data_dir).resolve() / "docker-data"  # docker/ is the image builder's
        self.folders = root / "data"
        # root's only: on the host the files on a disk are uid 1000's, which may be a real user of the host
        self.folders.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self.disks = Disks(root / "disks", settings.sandbox_data_quota_mb)

    def folder(self, space_id: str) -> Path:
        return self.folders / slug(space_id)

    def attach(self, space_id: str, volume_data: Path | None) -> Path:
        """The space's disk, mounted on its folder (once per running container), ready for uid 1000; a fresh
        disk first gets what ``volume_data`` (the named volume's folder on the host, from before) holds."""
        folder = self.folder(space_id)
        if not self.disks.image_of(folder).exists() and volume_data is not None and volume_data.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _copy(volume_data, folder)  # onto the host folder: the first mount moves it onto the disk
        self.disks.attach(folder)
        try:
            os.chown(folder, APP_UID, APP_UID)
        except BaseException:
            self.disks.detach(folder)
            raise
        return folder

    def detach(self, space_id: str) -> None:
        self.disks.detach(self.folder(space_id))

    def adopted(self, space_ids: Iterable[str]) -> None:
        """Running containers this platform took over: their disks are mounted already (the mount outlived the
        platform before), and in use. Were one unmounted on the host meanwhile, it is mounted again: util-linux's
        mount reuses the loop device the container's mount still holds, so both are one filesystem."""
        for space_id in space_ids:
            if not self.disks.in_use(self.folder(space_id)):  # adopting twice counts once
                self.disks.attach(self.folder(space_id))

    def unmount_idle(self, in_use: Iterable[str]) -> None:
        """Disks still mounted though no running container of this platform holds them (their containers died
        with a platform killed with -9, or were removed by hand)."""
        keep = {self.folder(s).resolve() for s in in_use}
        for mountpoint in mounts_under(self.folders):
            if mountpoint.resolve() not in keep:
                self.disks.unmount(mountpoint)

    def remove(self, space_id: str) -> None:
        """A deleted space's disk and its folder go with it."""
        folder = self.folder(space_id)
        self.disks.remove(folder)
        if folder.is_dir() and not os.path.ismount(folder):
            with contextlib.suppress(OSError):  # not empty: files of the host's, left alone
                folder.rmdir()


def _copy(source: Path, dest: Path) -> None:
    done = subprocess.run(["cp", "-a", f"{source}/.", str(dest)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackendError(f"copying {source} (the space's /data volume) onto its disk failed: "
                           f"{done.stderr.strip()[-300:]}",
                           hint="SPACES_SANDBOX_DATA_QUOTA_MB=0 keeps /data on the named volume")


def note_volumes(reason: str) -> None:
    log.warning("the docker backend keeps each app's /data on a named volume WITHOUT a quota: %s", reason)
