"""Turning a build plan into something a backend runs: a virtualenv (process backend) or an image (docker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from builder.plan import BuildPlan
from builder.spec import AppSpec
from spaces_runtime.config import Settings
from spaces_runtime.logs import LogSink

if TYPE_CHECKING:
    from builder.docker import ImageBuilder


@dataclass(frozen=True)
class BuiltEnvironment:
    env_dir: Path | None = None  # process backend
    image: str | None = None  # docker backend


class EnvironmentBuilder(Protocol):
    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment: ...


class VenvEnvironmentBuilder:
    """uv virtualenvs cached by env hash (builder.venv)."""

    def __init__(self, settings: Settings) -> None:
        from builder.venv import VenvBuilder

        self._venvs = VenvBuilder(settings.envs_dir, settings)

    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        return BuiltEnvironment(env_dir=self._venvs.build(plan, log))


class ImageEnvironmentBuilder:
    """Builds (or finds) the app's image; the docker backend runs it."""

    def __init__(self, images: ImageBuilder) -> None:
        self.images = images

    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        return BuiltEnvironment(image=self.images.build(spec, plan, log).tag)
