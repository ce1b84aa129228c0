"""A platform in a container (the platform image) names bind sources as the engine's host sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.errors import BackendError
from spaces_runtime.supervisor.hostpaths import host_path, host_source, host_volumes, own_container_id

CID = "a774dec807ba43a729a33a04714698551ee94bf22a8a7bb104289f10a3f1c7fc"
# /proc/self/mountinfo in `docker run --network host -v spaces-data:/data` (docker 20.10, overlay2)
MOUNTINFO = f"""\
76 51 0:52 / / rw,relatime master:19 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
93 76 254:0 /var/lib/docker/volumes/spaces-data/_data /data rw,relatime master:1 - ext4 /dev/vda rw
94 76 254:0 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw
95 76 254:0 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw
"""
MOUNTS = [
    {"Type": "volume", "Name": "spaces-data", "Source": "/var/lib/docker/volumes/spaces-data/_data",
     "Destination": "/data"},
    {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"},
    {"Type": "bind", "Source": "/srv/kit", "Destination": "/data/appkit"},
]


def test_the_container_id_comes_from_the_files_docker_mounts_into_it() -> None:
    assert own_container_id(MOUNTINFO) == CID
    assert own_container_id("25 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n") is None  # on the host


def test_a_path_on_a_volume_is_the_volumes_host_directory() -> None:
    assert host_source("/data/runner", MOUNTS) == "/var/lib/docker/volumes/spaces-data/_data/runner"
    assert host_source("/data", MOUNTS) == "/var/lib/docker/volumes/spaces-data/_data"
    assert host_source("/data/appkit/spaces", MOUNTS) == "/srv/kit/spaces"  # the deepest mount wins
    assert host_source("/database", MOUNTS) is None  # a prefix of the name is not a parent
    assert host_source("/opt/spaces", MOUNTS) is None


def test_bind_sources_are_translated_and_named_volumes_kept() -> None:
    volumes = {"spaces-abc-alice--demo-data": {"bind": "/data", "mode": "rw"},
               "/data/runner": {"bind": "/run/spaces-runner", "mode": "ro"}}
    assert host_volumes(volumes, MOUNTS) == {
        "spaces-abc-alice--demo-data": {"bind": "/data", "mode": "rw"},
        "/var/lib/docker/volumes/spaces-data/_data/runner": {"bind": "/run/spaces-runner", "mode": "ro"}}
    assert host_volumes(volumes, None) == volumes  # on the host: as they are


def test_a_path_only_the_container_has_is_refused_with_what_to_do() -> None:
    with pytest.raises(BackendError, match="-v spaces-data:/data"):
        host_volumes({"/opt/spaces/kit": {"bind": "/opt/spaces-appkit", "mode": "ro"}}, MOUNTS)


def test_two_platform_containers_on_two_volumes_have_two_data_dirs_on_the_host() -> None:
    other = [{**MOUNTS[0], "Source": "/var/lib/docker/volumes/other/_data"}]
    assert host_path(Path("/data"), MOUNTS) != host_path(Path("/data"), other)
    assert host_path(Path("/data"), None) == Path("/data")
