"""Turning a build plan into something a backend runs: a virtualenv (process backend) or an image (docker)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from builder.plan import BuildPlan
from builder.spec import AppSpec
from spaces_runtime.config import Settings
from spaces_runtime.logs import LogSink

if TYPE_CHECKING:
    from builder.docker import ImageBuilder
    from builder.venv import VenvBuilder


@dataclass(frozen=True)
class BuiltEnvironment:
    env_dir: Path | None = None  # process backend
    image: str | None = None  # docker backend


class EnvironmentBuilder(Protocol):
    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment: ...


class VenvEnvironmentBuilder:
    """uv virtualenvs cached by env hash (builder.venv), built in the build jail when apps are sandboxed.

    ``sandboxed`` says, when the first build starts, whether apps run in the sandbox (the process backend's
    check of the host; it raises the host's refusal when the sandbox is required and missing). Builds follow:
    jailed when apps are, as the platform when the operator opted out."""

    def __init__(self, settings: Settings, sandboxed: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self._sandboxed = sandboxed
        self._venvs: VenvBuilder | None = None

    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        return BuiltEnvironment(env_dir=self._builder().build(plan, log))

    def _builder(self) -> VenvBuilder:
        if self._venvs is None:
            from builder.venv import VenvBuilder, find_uv

            jail = None
            if self._sandboxed():
                from spaces_runtime.sandbox import preflight
                from spaces_runtime.sandbox.buildjail import BuildJail

                jail = BuildJail(self.settings, preflight.tools(), find_uv())
            self._venvs = VenvBuilder(self.settings.envs_dir, self.settings, jail=jail)
        return self._venvs


class ImageEnvironmentBuilder:
    """Builds (or finds) the app's image; the docker backend runs it."""

    def __init__(self, images: ImageBuilder) -> None:
        self.images = images

    def build(self, plan: BuildPlan, spec: AppSpec, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        return BuiltEnvironment(image=self.images.build(spec, plan, log).tag)
