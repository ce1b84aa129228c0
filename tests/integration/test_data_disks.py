"""Each space's /data on a disk of its own (spaces_runtime.sandbox.disks), with real loop mounts: what was there
before moves onto the disk, the quota holds, the disk stays mounted while any instance runs and comes back with
its data after a stop, and a delete removes it."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from prerequisites import missing

from spaces_runtime.sandbox.disks import Disks


@pytest.fixture
def disks(tmp_path: Path) -> Disks:
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not Path("/dev/loop-control").exists():
        missing("loop-mounted /data disks need root, e2fsprogs and loop devices")
    return Disks(tmp_path / "disks", size_mb=16)


def test_a_space_keeps_its_data_on_a_disk_of_its_own(disks: Disks, tmp_path: Path) -> None:
    data = tmp_path / "data" / "alice--demo"
    data.mkdir(parents=True)
    (data / "before.txt").write_text("written before quotas existed")
    os.chown(data / "before.txt", 4242, 4242)

    disks.attach(data)
    try:
        assert os.path.ismount(data)
        assert (data / "before.txt").read_text() == "written before quotas existed"
        assert (data / "before.txt").stat().st_uid == 4242  # owners kept
        assert not (data / "lost+found").exists()
        with pytest.raises(OSError) as full, open(data / "big.bin", "wb") as f:
            for _ in range(32):  # twice the quota
                f.write(bytes(1024 * 1024))
                f.flush()
                os.fsync(f.fileno())
        assert full.value.errno == errno.ENOSPC
        (data / "big.bin").unlink()

        disks.attach(data)  # a replacement instance starts beside the old one
        disks.detach(data)  # the old one stops
        assert os.path.ismount(data) and (data / "before.txt").exists()
    finally:
        disks.detach(data)
    assert not os.path.ismount(data) and not any(data.iterdir())  # asleep: the data is on its disk only

    disks.attach(data)  # woken: all of it is back
    assert (data / "before.txt").read_text() == "written before quotas existed"
    disks.remove(data)
    assert not os.path.ismount(data) and not disks.image_of(data).exists()


def test_leftover_mounts_of_a_killed_platform_are_removed(disks: Disks, tmp_path: Path) -> None:
    data = tmp_path / "data" / "bob--demo"
    data.mkdir(parents=True)
    disks.attach(data)
    Disks(tmp_path / "disks", size_mb=16).unmount_leftovers(tmp_path / "data")  # the next platform's start
    assert not os.path.ismount(data)
    disks.remove(data)


def test_a_quota_of_zero_leaves_data_a_plain_folder(tmp_path: Path) -> None:
    data = tmp_path / "plain"
    data.mkdir()
    Disks(tmp_path / "disks", size_mb=0).attach(data)
    assert not os.path.ismount(data) and not (tmp_path / "disks").exists()
