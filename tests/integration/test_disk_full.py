"""A full disk, met as an unlucky operator meets it: the platform's data dir on a small tmpfs, filled to the last
byte. Writes answer 507 with how much is free, never a bare 500; the store stays intact; nothing half-written is
left; freeing space is all it takes to carry on."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spaces_harness import Platform, write_app

STATIC = "---\ntitle: Site\nsdk: static\n---\n"


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = tmp_path_factory.mktemp("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def platform(disk: Path) -> Iterator[Platform]:
    server = Platform(disk / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    yield server
    server.stop()


def fill(disk: Path) -> Path:
    """Write zeros until the disk refuses another byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left to fail at close
        for size in (1024 * 1024, 4096, 1):
            with contextlib.suppress(OSError):
                while out.write(b"\0" * size):
                    pass
    return filler


def incompressible_app(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("README.md", STATIC.encode()), ("index.html", b"new"), ("blob.bin", os.urandom(size))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_full_disk_is_a_507_that_says_so_and_loses_nothing(platform: Platform, disk: Path, tmp_path: Path) -> None:
    site = write_app(tmp_path / "site", {"README.md": STATIC, "index.html": "before the disk filled up"})
    platform.cli("deploy", str(site), "--name", "full/site", check=True)
    filler = fill(disk)
    try:
        upload = httpx.put(f"{platform.url}/api/spaces/full/other", content=incompressible_app(4 * 1024 * 1024),
                           headers=platform.auth, timeout=60)
        assert upload.status_code == 507, upload.text
        assert "the platform's disk is full" in upload.json()["message"] and "free in" in upload.json()["message"]
        for response in (httpx.post(f"{platform.url}/api/spaces/full/site/like", json={"liked": True}, timeout=30),
                         httpx.post(f"{platform.url}/api/spaces/full/site/restart", headers=platform.auth,
                                    timeout=30)):
            assert response.status_code in (200, 202, 507), response.text  # tiny writes may still fit
            if response.status_code == 507:
                assert "disk is full" in response.json()["message"]
        scratch = platform.data_dir / "tmp"
        assert not scratch.exists() or list(scratch.iterdir()) == [], "no half-received upload is left"
        assert not (platform.data_dir / "apps" / "full" / "other").exists()
    finally:
        filler.unlink()
    assert platform.space("full/site")["title"] == "Site"  # the store is intact
    platform.wait_for("full/site")
    assert httpx.get(f"{platform.url}/spaces/full/site/", timeout=30).text == "before the disk filled up"
    again = httpx.put(f"{platform.url}/api/spaces/full/other", content=incompressible_app(1024),
                      headers=platform.auth, timeout=60)
    assert again.status_code == 202, again.text
