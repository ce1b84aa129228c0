"""One three-node swarm for the whole session (tests/swarm/cluster.py), torn down even when a test fails.

It needs root (network namespaces, dockerd), the host's Docker Engine (the base and SDK images come from it) and
Debian's docker-registry; missing, the tests skip on a developer's machine and FAIL when CI is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, leftovers
from prerequisites import missing
from swarmkit import sdk_images

from builder.docker.render import BOOTSTRAP_BASE
from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        missing("the swarm tests make network namespaces and start engines: they need root")
    if shutil.which("dockerd") is None or not Path("/usr/bin/docker-registry").exists():
        missing("dockerd or docker-registry is missing; run scripts/setup.sh --test")
    try:
        names = sdk_images(Settings(backend="docker", base_image=BOOTSTRAP_BASE))
    except BackendError as exc:
        missing(f"Docker Engine unreachable: {exc}; run scripts/install-docker.sh")
    made = Cluster(tmp_path_factory.mktemp("swarm"))
    try:
        made.start()
        made.load_images(names)
        yield made
    finally:
        made.stop()
    left = leftovers()
    assert not left, f"the cluster left {left} behind"
