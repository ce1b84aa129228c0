"""`spaces serve --backend docker` end to end: every core example built into an image, run in a hardened
container, and answering through the gateway exactly as on the process backend."""

from __future__ import annotations

import signal
from pathlib import Path

import docker
import httpx
import pytest

from example_checks import (
    CORE_EXAMPLES,
    check_audio_lab,
    check_image_filters,
    check_sentiment,
    check_streamlit_script_runs,
)
from spaces_harness import Platform, serving_examples
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, platform_id

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def platform(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    root = tmp_path_factory.mktemp("docker-platform")
    try:
        with serving_examples(root, CORE_EXAMPLES, ["--backend", "docker"], {"SPACES_RUNNER_ENABLED": "false"},
                              timeout=900) as server:
            yield server
    finally:
        ours = {"label": f"{PLATFORM_LABEL}={platform_id(root / 'data')}"}
        for container in engine.containers.list(all=True, filters=ours):
            container.remove(force=True)


def containers_of(engine: docker.DockerClient, space_id: str) -> list[str]:
    found = engine.containers.list(filters={"label": f"spaces-runtime.space={space_id}"})
    return sorted(c.id for c in found)


def test_every_example_answers_from_its_container(platform: Platform, tmp_path: Path) -> None:
    for name in CORE_EXAMPLES:
        assert platform.space(f"examples/{name}")["runtime"]["backend"] == "docker"
    check_sentiment(platform.example_url("sentiment"))
    check_image_filters(platform.example_url("image-filters"), tmp_path)
    check_audio_lab(platform.example_url("audio-lab"), tmp_path)
    check_streamlit_script_runs(platform.example_url("data-explorer"))


def test_killed_platform_adopts_its_containers_without_duplicates(platform: Platform,
                                                                  engine: docker.DockerClient) -> None:
    before = {name: containers_of(engine, f"examples/{name}") for name in CORE_EXAMPLES}
    assert all(len(ids) == 1 for ids in before.values()), before
    platform.stop(signal.SIGKILL)
    platform.start(timeout=120)
    for name in CORE_EXAMPLES:
        platform.wait_for(f"examples/{name}", timeout=300)
    after = {name: containers_of(engine, f"examples/{name}") for name in CORE_EXAMPLES}
    assert after == before  # the same containers, taken over: none started twice, none lost
    check_sentiment(platform.example_url("sentiment"))


def test_a_docker_sdk_app_builds_from_its_own_dockerfile(platform: Platform, tmp_path: Path) -> None:
    """`spaces init --sdk docker` → its own Dockerfile (FROM an image no registry serves here) builds on the
    base image the platform has, runs as uid 1000, and answers through the gateway without knowing its prefix."""
    folder = tmp_path / "dock"
    platform.cli("init", str(folder), "--sdk", "docker", check=True)
    deployed = platform.cli("deploy", str(folder), "--name", "tests/dock", timeout=900)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    answer = httpx.get(f"{platform.url}/spaces/tests/dock/api/hello", params={"name": "Ada"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "Ada" in answer.json()["message"]
    assert "Dock" in httpx.get(f"{platform.url}/spaces/tests/dock/", timeout=30).text
