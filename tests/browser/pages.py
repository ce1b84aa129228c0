"""A FastAPI app with the real gallery and API routers over a real SQLite store and log book (no supervisor):
for rendering tests that need no browser and no running apps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from spaces_runtime.config import Settings
from spaces_runtime.errors import SpacesError
from spaces_runtime.events import EventHub
from spaces_runtime.logs import LogBook
from spaces_runtime.server import api, gallery
from spaces_runtime.server.api import Platform
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store


class IdleDeployer:
    """The deployer's read side as the pages and API use it, for a platform where nothing is deploying."""

    def is_deploying(self, space_id: str) -> bool:
        return False

    def runtime(self, space_id: str) -> dict[str, Any] | None:
        return None


def make_platform(data_dir: Path) -> Platform:
    settings = Settings(data_dir=data_dir, port=7000, runner_enabled=False)
    return Platform(settings, Store(settings.db_path), LogBook(data_dir / "logs"), IdleDeployer(),  # type: ignore[arg-type]
                    EventHub())


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
        if stage in (Stage.RUNNING, Stage.RUNTIME_ERROR):
            p.store.set_stage(space_id, Stage.APP_STARTING)
        p.store.set_stage(space_id, stage, error=error)
