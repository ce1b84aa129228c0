"""A FastAPI app with the real gallery and API routers over a platform built by the real composition root, never
started: for rendering tests that need no browser and no running apps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from spaces_runtime.config import Settings
from spaces_runtime.errors import SpacesError
from spaces_runtime.server import api, gallery
from spaces_runtime.stages import Stage
from spaces_runtime.wiring import Platform, build_platform


def make_platform(data_dir: Path) -> Platform:
    return build_platform(Settings(data_dir=data_dir, port=7000, runner_enabled=False))


def make_app(p: Platform) -> FastAPI:
    app = FastAPI()
    app.state.platform = p

    @app.exception_handler(SpacesError)
    async def spaces_error(_: Any, exc: SpacesError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.http_status)

    app.include_router(api.router)
    app.include_router(gallery.router)
    return app


def add_space(p: Platform, space_id: str, stage: Stage = Stage.RUNNING, error: str | None = None,
              **card: Any) -> None:
    p.store.create_or_touch(space_id, Stage.BUILDING, "test")
    p.store.update(space_id, card={"sdk": "gradio", "title": space_id.split("/")[1], **card})
    if stage != Stage.BUILDING:
        if stage in (Stage.RUNNING, Stage.RUNTIME_ERROR, Stage.SLEEPING):
            p.store.set_stage(space_id, Stage.APP_STARTING)
        if stage is Stage.SLEEPING:
            p.store.set_stage(space_id, Stage.RUNNING)
        p.store.set_stage(space_id, stage, error=error)
