"""Builds the ASGI app: FastAPI (REST API, gallery, metrics) behind the gateway, which takes app links first.
Serves HTTP only: the platform it serves was built and is started and stopped by ``spaces_runtime.wiring``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from spaces_runtime import __version__
from spaces_runtime.errors import SpacesError
from spaces_runtime.gateway.access import app_origins
from spaces_runtime.gateway.proxy import Gateway
from spaces_runtime.hub import api as hub_api
from spaces_runtime.hub.githttp import GitHttp
from spaces_runtime.server import accounts, admin, api, export, gallery, history, nodes, secrets, sessions, web
from spaces_runtime.wiring.platform import Platform


def error_body(exc: SpacesError) -> dict[str, str | None]:
    return {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint, "detail": str(exc)}


def create_app(p: Platform) -> Gateway:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await p.start()
        try:
            yield
        finally:
            await p.stop()
            await gateway.aclose()

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

    hub_api.install(app, p)  # the Hub's API (huggingface_hub, gradio_client), a superset answered before api's
    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(nodes.router)  # the swarm backend's nodes (before the gallery's /{owner}/{name})
    app.include_router(accounts.router)
    app.include_router(secrets.router)
    app.include_router(web.router)  # sign-in, sign-out and settings pages
    app.include_router(sessions.router)  # where a user is signed in (before the gallery's /{owner}/{name})
    app.include_router(gallery.router)
    app.include_router(history.router)
    app.include_router(export.router)
    app.mount("/spaces/{owner}/{name}", GitHttp(p))  # git on the app's link: the gateway hands git's requests here
    origins = app_origins(p.settings.host_links_available, p.settings.public_link_host, p.settings.port, p.auth)
    gateway = Gateway(app, p.targets, public_host=p.settings.public_link_host, origins=origins)
    return gateway
