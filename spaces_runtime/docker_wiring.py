"""The docker backend's parts for `spaces serve --backend docker`, `spaces build` and `spaces base-image`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from builder.docker import ImageBuilder, connect, ensure_base_image
from spaces_runtime.config import Settings
from spaces_runtime.deployer import BuiltEnvironment
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.docker import DockerBackend


class ImageEnvironmentBuilder:
    """Builds (or finds) the app's image; the docker backend runs it."""

    def __init__(self, settings: Settings, images: ImageBuilder) -> None:
        self.settings = settings
        self.images = images

    def build(self, plan: Any, spec: Any, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        return BuiltEnvironment(image=self.images.build(spec, plan, log).tag)


def image_builder(settings: Settings) -> ImageBuilder:
    client = connect(os.environ)
    return ImageBuilder(client, settings, environ=os.environ, work_dir=settings.data_dir / "docker")


def docker_parts(settings: Settings) -> tuple[DockerBackend, ImageEnvironmentBuilder]:
    images = image_builder(settings)
    return DockerBackend(settings, images.client), ImageEnvironmentBuilder(settings, images)


def bootstrap_base_image(settings: Settings, log: LogSink) -> str:
    """SPACES_BASE_IMAGE when present or pullable, else one bootstrapped from Debian packages; returns its tag."""
    return ensure_base_image(connect(os.environ), settings.base_image, log, work_dir=settings.data_dir / "docker")
