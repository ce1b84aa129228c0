"""The docker backend's parts, for `spaces serve --backend docker`, `spaces build` and `spaces base-image`.

The Docker SDK and CLI read DOCKER_HOST and friends from the environment, as every docker tool does: this is the
one place that hands ``os.environ`` to them."""

from __future__ import annotations

import os
from pathlib import Path

from builder import plan as build_plan
from builder import spec as build_spec
from builder.docker import ImageBuilder, connect, ensure_base_image
from builder.docker.build import BuiltImage
from spaces_runtime.config import Settings
from spaces_runtime.deploy.environments import ImageEnvironmentBuilder
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.docker import DockerBackend


def image_builder(settings: Settings) -> ImageBuilder:
    client = connect(os.environ)
    return ImageBuilder(client, settings, environ=os.environ, work_dir=settings.data_dir / "docker")


def build_image(folder: Path, settings: Settings, log: LogSink) -> BuiltImage:
    """`spaces build DIR`: the app's image, exactly as the docker backend would build it."""
    spec = build_spec.load(folder)
    return image_builder(settings).build(spec, build_plan.make(spec, settings), log)


def docker_parts(settings: Settings) -> tuple[DockerBackend, ImageEnvironmentBuilder]:
    images = image_builder(settings)
    return DockerBackend(settings, images.client), ImageEnvironmentBuilder(images)


def bootstrap_base_image(settings: Settings, log: LogSink) -> str:
    """SPACES_BASE_IMAGE when present or pullable, else one bootstrapped from Debian packages; returns its tag."""
    return ensure_base_image(connect(os.environ), settings.base_image, log, work_dir=settings.data_dir / "docker")
