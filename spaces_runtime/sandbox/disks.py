"""A disk of its own for each space's /data: a sparse ext4 image, loop-mounted on the space's data folder while
an instance of the space runs, so an app that fills /data gets ENOSPC at its quota instead of filling the host.

Why a loop-mounted image: the host's filesystem here is ext4 without project quotas, and per-uid quotas would need
quota tools and a remount of the host's filesystem; an image needs only util-linux and e2fsprogs (on every Debian),
costs no disk until written (sparse, no reserved blocks, inode tables initialised lazily), and its limit is
exact. It is mounted in the host's namespace (not the app's) because a replacement instance starts while the old
one still serves: both must see one mounted filesystem, never two mounts of one image. The mount lasts while
any instance of the space runs (a count per space) and goes when the last stops (sleep, pause, platform stop);
a platform killed with -9 leaves mounts that ``unmount_leftovers`` removes at the next start.

Data written before quotas existed is moved onto the new disk the first time it is mounted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from spaces_runtime.errors import BackendError

IMAGE_SUFFIX = ".disk"


class Disks:
    def __init__(self, images_dir: Path, size_mb: int) -> None:
        self.images_dir = images_dir
        self.size_mb = size_mb
        self._users: dict[Path, int] = {}
        self._lock = threading.Lock()

    def attach(self, folder: Path) -> None:
        """``folder`` (a space's /data) is its disk from now on, until the matching ``detach``."""
        if self.size_mb <= 0:
            return
        with self._lock:
            if self._users.get(folder, 0) == 0 and not os.path.ismount(folder):
                self._mount(folder)
            self._users[folder] = self._users.get(folder, 0) + 1

    def detach(self, folder: Path) -> None:
        if self.size_mb <= 0:
            return
        with self._lock:
            left = self._users.get(folder, 0) - 1
            if left > 0:
                self._users[folder] = left
                return
            self._users.pop(folder, None)
            _unmount(folder)

    def remove(self, folder: Path) -> None:
        """A deleted space's disk goes with it."""
        with self._lock:
            self._users.pop(folder, None)
            _unmount(folder)
        with contextlib.suppress(FileNotFoundError):
            self.image_of(folder).unlink()

    def in_use(self, folder: Path) -> bool:
        with self._lock:
            return self._users.get(folder, 0) > 0

    def unmount(self, folder: Path) -> None:
        """Unmounted now, whatever the count said (a mount an earlier platform left)."""
        with self._lock:
            self._users.pop(folder, None)
            _unmount(folder)

    def image_of(self, folder: Path) -> Path:
        return self.images_dir / f"{folder.name}{IMAGE_SUFFIX}"

    def unmount_leftovers(self, data_root: Path) -> None:
        """Mounts under ``data_root`` that a platform killed with -9 left (none of its apps survived it)."""
        for mountpoint in mounts_under(data_root):
            _unmount(mountpoint)

    def _mount(self, folder: Path) -> None:
        image = self.image_of(folder)
        fresh = not image.exists()
        if fresh:
            self._make(image)
        if fresh and folder.is_dir() and any(folder.iterdir()):
            self._move_in(folder, image)
        folder.mkdir(parents=True, exist_ok=True)
        # noinit_itable: the kernel would otherwise zero the lazily made inode tables in the background, writing
        # hundreds of MB into a sparse image that already reads as zeros
        _must("mount", "-o", "loop,nosuid,nodev,noinit_itable", str(image), str(folder))
        if fresh:  # /data starts empty on HF; an app has no use for (and no access to) lost+found
            with contextlib.suppress(OSError):
                (folder / "lost+found").rmdir()

    def _make(self, image: Path) -> None:
        self.images_dir.mkdir(parents=True, exist_ok=True)
        partial = image.with_suffix(".partial")
        with open(partial, "wb") as handle:
            handle.truncate(self.size_mb * 1024 * 1024)
        # no reserved blocks (no root process writes here), lazy inode tables: the image stays sparse
        _must("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", str(partial))
        partial.rename(image)

    def _move_in(self, folder: Path, image: Path) -> None:
        """What the folder held before it had a disk, moved onto the disk (owners and modes kept)."""
        staging = image.with_suffix(".mnt")
        staging.mkdir(exist_ok=True)
        _must("mount", "-o", "loop,noinit_itable", str(image), str(staging))
        try:
            _must("cp", "-a", f"{folder}/.", str(staging))
        finally:
            _unmount(staging)
            staging.rmdir()
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def mounts_under(root: Path) -> list[Path]:
    prefix = str(root.resolve()).rstrip("/") + "/"
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            mountpoint = line.split()[1].replace("\\040", " ")
            if mountpoint.startswith(prefix):
                found.append(Path(mountpoint))
    return found


def _unmount(folder: Path) -> None:
    """Unmount if mounted; lazily when something still holds it open (a process dying right now)."""
    if os.path.ismount(folder) and subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _must(*argv: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"`{' '.join(argv)}` failed: {exc}",
                           hint="the /data quota needs util-linux's mount and e2fsprogs' mkfs.ext4; "
                                "SPACES_SANDBOX_DATA_QUOTA_MB=0 turns it off") from None
    if done.returncode != 0:
        raise BackendError(f"`{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()[-300:]}",
                           hint="the /data quota needs loop devices (losetup -f); "
                                "SPACES_SANDBOX_DATA_QUOTA_MB=0 turns it off")
