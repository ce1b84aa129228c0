"""Spaces of every SDK era deploy unchanged on the docker backend too: the six era apps of the process backend's
test_eras.py (Gradio 4.44 — here on `python_version: "3.9"`, as Spaces of its time pinned it —, Gradio 5.9,
Streamlit 1.17 and 1.25, a `python_version: "3.12"` Gradio 6.31 app, and one that hard-codes
`server_port=7860` on 0.0.0.0) each build an image (a Python the base image lacks is the host's interpreter of
that version copied into the SDK image: nothing is downloaded), run in their hardened containers and answer
through the gateway with the same named endpoints and outputs as the same app run directly in a virtualenv of its
era (each called with the gradio_client or Streamlit protocol of its era). The direct runs are the session's
``direct_eras``, shared with the process backend's test."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from era_apps import APPS as ERA_APPS
from era_apps import GRADIO_4, PYTHON_3_12, STREAMLIT_1_17, DirectEras, EraApp, probe
from prerequisites import missing

from spaces_harness import Platform, free_port
from spaces_runtime.sdk_eras import stream_path
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, platform_id

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]
OWNER = "eras"
# Gradio 4.44 on Python 3.9, as Spaces of its time pinned it (the base image has 3.11); the other five as they are
GRADIO_4_PY39 = replace(GRADIO_4, name="gradio-4-44-py39", python_version="3.9")
APPS = tuple(GRADIO_4_PY39 if app is GRADIO_4 else app for app in ERA_APPS)


def _deploy(server: Platform, app: EraApp, root: Path) -> None:
    folder = app.write(root / app.name)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    response = httpx.put(
        f"{server.url}/api/spaces/{OWNER}/{app.name}",
        content=buffer.getvalue(),
        timeout=60,
        headers={"Content-Type": "application/gzip", **server.auth},
    )
    assert response.status_code == 202, response.text


@pytest.fixture(scope="module")
def platform(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("docker-eras")
    server = Platform(root / "data", extra_args=["--backend", "docker"], env={"SPACES_RUNNER_ENABLED": "false"}).start(
        timeout=120
    )
    try:
        for app in APPS:  # all at once: the platform builds them side by side
            _deploy(server, app, root / "upload")
        yield server
    finally:
        server.stop()
        ours = {"label": f"{PLATFORM_LABEL}={platform_id(root / 'data')}"}
        for container in engine.containers.list(all=True, filters=ours):
            container.remove(force=True)
        for volume in engine.volumes.list(filters=ours):
            volume.remove(force=True)


@pytest.fixture(scope="module")
def direct(direct_eras: DirectEras) -> DirectEras:
    absent = direct_eras.absent(APPS)
    if absent:
        missing(f"this host has no Python {', '.join(absent)} (pyenv or uv) for the era apps")
    with ThreadPoolExecutor(max_workers=len(APPS)) as pool:
        list(pool.map(direct_eras.built, APPS))
    return direct_eras


@pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])
def test_an_era_app_answers_from_its_container_as_directly(app: EraApp, platform: Platform,
                                                           direct: DirectEras) -> None:
    expected: dict[str, Any] = direct.answer(app, free_port())
    space = platform.wait_for(f"{OWNER}/{app.name}", timeout=900)
    assert space["runtime"]["backend"] == "docker"
    answer = probe(app, direct.python(app), f"{platform.url}/spaces/{OWNER}/{app.name}/")
    assert answer == expected
    if app.sdk == "gradio":
        assert answer["endpoints"] == sorted(name for name, _ in app.calls)
    else:
        assert answer["exceptions"] == [] and answer["texts"], answer


def test_old_streamlit_answers_on_the_paths_of_its_era(platform: Platform, direct: DirectEras) -> None:
    """The equality above must not be two identical failures: Streamlit 1.17 (before 1.18 moved its health and
    stream paths) draws its chart and text over the WebSocket path of its era, from its container."""
    platform.wait_for(f"{OWNER}/{STREAMLIT_1_17.name}", timeout=900)
    url = f"{platform.url}/spaces/{OWNER}/{STREAMLIT_1_17.name}/"
    answer = probe(STREAMLIT_1_17, direct.python(STREAMLIT_1_17), url)
    assert STREAMLIT_1_17.stream_path == stream_path(STREAMLIT_1_17.sdk_version) == "stream"
    assert "arrow_vega_lite_chart" in answer["elements"] and "total **12**" in answer["texts"], answer


def test_the_container_runs_the_python_the_readme_asks_for(
    platform: Platform, engine: docker.DockerClient, direct: DirectEras
) -> None:
    """The 3.12 app says which Python serves it; the 3.9 image's interpreter is 3.9, and the build log says why."""
    platform.wait_for(f"{OWNER}/{PYTHON_3_12.name}", timeout=900)
    answer = probe(PYTHON_3_12, direct.python(PYTHON_3_12), f"{platform.url}/spaces/{OWNER}/{PYTHON_3_12.name}/")
    assert answer["outputs"] == {"/python": "3.12"}
    old = GRADIO_4_PY39
    space = platform.wait_for(f"{OWNER}/{old.name}", timeout=900)
    container = engine.containers.get(space["runtime"]["backend_ref"])
    ran = container.exec_run(["python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], user="1000")
    assert ran.exit_code == 0 and ran.output.decode().strip() == "3.9"
    log = httpx.get(f"{platform.url}/api/spaces/{OWNER}/{old.name}/logs/build", params={"follow": 0}, timeout=30).text
    assert "==> Python 3.9." in log and "the base image has Python 3.11, so the SDK image gets a copy of it" in log
