"""Builds the ASGI app: FastAPI (REST API, gallery, metrics) behind the gateway, which takes app links first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp

from spaces_runtime import __version__
from spaces_runtime.errors import SpacesError
from spaces_runtime.gateway.proxy import Gateway
from spaces_runtime.server import api, gallery
from spaces_runtime.server.api import Platform


def error_body(exc: SpacesError) -> dict[str, str | None]:
    return {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint, "detail": str(exc)}


def create_app(p: Platform) -> ASGIApp:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        p.logs.bind_loop(asyncio.get_running_loop())
        await p.deployer.supervisor.start()
        if p.runner is not None:
            await p.runner.start()
        await p.deployer.restore()
        if p.settings.examples_dir is not None:
            await p.deployer.deploy_examples(p.settings.examples_dir)
        try:
            yield
        finally:
            await p.deployer.shutdown()
            await gateway.aclose()
            if p.runner is not None:
                await p.runner.stop()

    app = FastAPI(title="spaces-runtime", version=__version__, lifespan=lifespan,
                  description="A self-hosted Hugging Face Spaces: deploy Gradio and Streamlit apps, share links.")
    app.state.platform = p

    @app.exception_handler(SpacesError)
    async def spaces_error(_: Request, exc: SpacesError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        return JSONResponse(error_body(exc), status_code=exc.http_status, headers=headers)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(api.metrics_text(p), media_type="text/plain; version=0.0.4")

    app.include_router(api.router)
    app.include_router(gallery.router)
    gateway = Gateway(app, p.deployer, public_host=p.settings.public_link_host)
    # a stage change may move the app (a swap, a stop): the gateway must not keep proxying to its old address
    p.deployer.stage_listeners.append(lambda space_id: gateway.forget(*space_id.split("/", 1)))
    return gateway
