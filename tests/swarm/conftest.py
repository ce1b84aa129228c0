"""One three-node swarm for the whole session (tests/swarm/cluster.py), torn down even when a test fails.

It needs root (network namespaces, dockerd), the host's Docker Engine (the base and SDK images come from it) and
Debian's docker-registry; missing, the tests skip on a developer's machine and FAIL when CI is set.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import GPU_NODE, Cluster, leftovers
from prerequisites import missing
from swarmkit import (
    SWARM_EXAMPLES,
    TWIN_SECRET,
    ManagerPlatform,
    host_runner_image,
    manager_platform,
    sdk_images,
    twin_apps,
)

from builder.docker.render import BOOTSTRAP_BASE
from spaces_harness import EXAMPLES, copy_app
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
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        runner = pool.submit(host_runner_image)  # built on the host while the cluster starts
        try:
            made.start()
            made.load_images(names)
            made.load_images([runner.result(timeout=900)], made.node(GPU_NODE))
            made.runner_image = runner.result()
            yield made
        finally:
            made.stop()
    left = leftovers()
    assert not left, f"the cluster left {left} behind"


@pytest.fixture(scope="session")
def platform(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerPlatform]:
    """One `spaces serve --backend swarm` for both modules (images pushed once): the examples, and two apps with
    2 replicas that say which task served them (tests/twin: Gradio, tests/lit: Streamlit)."""
    root = tmp_path_factory.mktemp("swarm-platform")
    for name in SWARM_EXAMPLES:
        copy_app(EXAMPLES / name, root / "examples" / name)
    server = manager_platform(cluster, root, ["--examples", str(root / "examples")],
                              runner_image=cluster.runner_image)
    server.start()
    try:
        made = httpx.post(f"{server.url}/api/spaces/tests/twin/secrets", headers=server.auth, timeout=30,
                          json={"key": "TWIN_SECRET", "value": TWIN_SECRET})
        assert made.status_code == 200, made.text
        for space_id, folder in twin_apps(root).items():
            server.cli("deploy", str(folder), "--name", space_id, check=True, timeout=900)
        server.wait_all_running(timeout=900)
        yield server
    finally:
        server.stop()
