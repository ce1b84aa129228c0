"""Helpers for the docker tests: build an app folder, a LaunchSpec for an image, wait for HTTP."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from polling import wait_http

from builder import plan as plans
from builder import spec as specs
from builder.docker import BuiltImage, ImageBuilder
from spaces_runtime.config import Settings
from spaces_runtime.supervisor.backend import Instance, LaunchSpec

APPS = Path(__file__).parent / "apps"

def build(image_builder: ImageBuilder, settings: Settings, folder: Path,
          lines: list[str] | None = None) -> BuiltImage:
    spec = specs.load(folder)
    plan = plans.make(spec, settings)
    return image_builder.build(spec, plan, (lines if lines is not None else []).append)

def launch_spec(space_id: str, image: BuiltImage, sdk: str, **overrides: object) -> LaunchSpec:
    fields: dict[str, object] = {"space_id": space_id, "sdk": sdk, "app_dir": Path("/nonexistent"),
                                 "app_file": "app.py", "base_path": "", "image": image.tag,
                                 "app_port": image.app_port}
    fields.update(overrides)
    return LaunchSpec(**fields)  # type: ignore[arg-type]


def copy_app(name: str, target: Path) -> Path:
    folder = target / name
    shutil.copytree(APPS / name, folder)
    return folder

async def wait_ready(instance: Instance, path: str = "/", expect: str | None = None) -> None:
    await asyncio.to_thread(wait_http, instance.upstream + path, 90.0, expect)
