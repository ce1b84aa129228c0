"""Fixtures for tests that need a real Docker Engine.

When the engine does not answer, these tests skip on a developer's machine and FAIL when CI is set: CI must
run them for real (`scripts/install-docker.sh` starts the engine).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest
from dockerkit import APPS, build
from prerequisites import missing

from builder.docker import BuiltImage, ImageBuilder, connect
from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.supervisor.docker import DockerBackend
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, platform_id


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        return connect(os.environ)
    except BackendError as exc:
        missing(f"Docker Engine unreachable: {exc}; run scripts/install-docker.sh")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(backend="docker", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def image_builder(engine: docker.DockerClient, settings: Settings) -> ImageBuilder:
    return ImageBuilder(engine, settings, environ=os.environ)


@pytest.fixture(scope="session")
def gradio_image(image_builder: ImageBuilder, settings: Settings) -> BuiltImage:
    return build(image_builder, settings, APPS / "gradio_hello")


@pytest.fixture(scope="session")
def streamlit_image(image_builder: ImageBuilder, settings: Settings) -> BuiltImage:
    return build(image_builder, settings, APPS / "streamlit_hello")


@pytest.fixture
def backend(engine: docker.DockerClient, settings: Settings) -> Iterator[DockerBackend]:
    backend = DockerBackend(settings, engine)
    yield backend
    # whatever a test left running goes, with this platform's volumes
    ours = {"label": f"{PLATFORM_LABEL}={platform_id(settings.data_dir)}"}
    for container in engine.containers.list(all=True, filters=ours):
        container.remove(force=True)
    backend.unmount_idle()  # their /data disks
    for volume in engine.volumes.list(filters=ours):
        volume.remove(force=True)
