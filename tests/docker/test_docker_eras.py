"""Old-era Spaces whose README asks for a Python the base image does not have deploy on the docker backend: a
Gradio 4.44 Space with `python_version: "3.9"` and a Gradio 6.31 one with
`python_version: "3.12"` each build an image (the host's interpreter of that version copied into the SDK image:
nothing is downloaded), run in their hardened containers and answer through the gateway with the same named
endpoints and outputs as the same app run directly in a virtualenv of its era (Gradio called with the
gradio_client of its era). Streamlit's old eras (1.17's health and stream paths) are the process backend's
test_eras.py: the docker backend renders them from the same table (sdk_eras), and one more SDK image build here
cost ~70 s of the suite's 30 minutes."""

from __future__ import annotations

import io
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from prerequisites import missing

from builder.pythons import discover
from builder.releases import release_time
from spaces_harness import Platform, free_port
from spaces_runtime.config import Settings
from spaces_runtime.supervisor.docker import PLATFORM_LABEL, platform_id

# the era apps and their direct runs are shared with the process backend's tests/integration/test_eras.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from era_apps import GRADIO_4, PYTHON_3_12, EraApp, direct_venv, probe, running_directly

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]
OWNER = "eras"
# Gradio 4.44 on Python 3.9, as Spaces of its time pinned it, and the 3.12 app: neither is the base image's 3.11
APPS = (
    replace(GRADIO_4, name="gradio-4-44-py39", python_version="3.9"),
    PYTHON_3_12,
)


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
        for app in APPS:  # both at once: the platform builds them side by side
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
def direct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Each app's folder and its own era virtualenv on the host's interpreter of its Python."""
    root = tmp_path_factory.mktemp("docker-eras-direct")
    pythons = {i.minor_version: i.path for i in discover(Settings())}
    absent = sorted({str(app.python_version) for app in APPS} - set(pythons))
    if absent:
        missing(f"this host has no Python {', '.join(absent)} (pyenv or uv) for the era apps")

    def build(app: EraApp) -> tuple[Path, Path]:
        as_of = release_time(app.sdk, app.sdk_version) + timedelta(days=1)
        folder = app.write(root / app.name / "app")
        built = direct_venv(
            app, root / app.name / "venv", str(pythons[str(app.python_version)]), f"{as_of:%Y-%m-%dT%H:%M:%SZ}"
        )
        assert built.returncode == 0, f"{app.name} does not install directly: {built.stderr[-2000:]}"
        return folder, root / app.name / "venv"

    with ThreadPoolExecutor(max_workers=len(APPS)) as pool:
        return dict(zip((app.name for app in APPS), pool.map(build, APPS), strict=True))


@pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])
def test_an_era_app_on_another_python_answers_from_its_container_as_directly(
    app: EraApp, platform: Platform, direct: dict[str, tuple[Path, Path]]
) -> None:
    folder, venv = direct[app.name]
    with running_directly(app, folder, venv, free_port()) as url:
        expected: dict[str, Any] = probe(app, venv / "bin" / "python", url)
    space = platform.wait_for(f"{OWNER}/{app.name}", timeout=900)
    assert space["runtime"]["backend"] == "docker"
    answer = probe(app, venv / "bin" / "python", f"{platform.url}/spaces/{OWNER}/{app.name}/")
    assert answer == expected
    if app.sdk == "gradio":
        assert answer["endpoints"] == sorted(name for name, _ in app.calls)
    else:
        assert answer["exceptions"] == [] and "total **12**" in answer["texts"], answer


def test_the_container_runs_the_python_the_readme_asks_for(
    platform: Platform, engine: docker.DockerClient, direct: dict[str, tuple[Path, Path]]
) -> None:
    """The 3.12 app says which Python serves it; the 3.9 image's interpreter is 3.9, and the build log says why."""
    platform.wait_for(f"{OWNER}/{PYTHON_3_12.name}", timeout=900)
    python = direct[PYTHON_3_12.name][1] / "bin" / "python"
    answer = probe(PYTHON_3_12, python, f"{platform.url}/spaces/{OWNER}/{PYTHON_3_12.name}/")
    assert answer["outputs"] == {"/python": "3.12"}
    old = APPS[0]
    space = platform.wait_for(f"{OWNER}/{old.name}", timeout=900)
    container = engine.containers.get(space["runtime"]["backend_ref"])
    ran = container.exec_run(["python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], user="1000")
    assert ran.exit_code == 0 and ran.output.decode().strip() == "3.9"
    log = httpx.get(f"{platform.url}/api/spaces/{OWNER}/{old.name}/logs/build", params={"follow": 0}, timeout=30).text
    assert "==> Python 3.9." in log and "the base image has Python 3.11, so the SDK image gets a copy of it" in log
