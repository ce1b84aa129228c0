"""`spaces serve`: the built platform behind uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from spaces_runtime.config import Settings
from spaces_runtime.server.app import create_app
from spaces_runtime.wiring.build import build_platform

log = logging.getLogger("spaces_runtime")


def run_server(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # every readiness probe would be a line
    platform = build_platform(settings)
    gateway = create_app(platform)
    # a stage change may move the app (a swap, a stop): the gateway must not keep proxying to its old address
    platform.stages.listeners.append(lambda space_id: gateway.forget(*space_id.split("/", 1)))
    if settings.token and settings.listens_beyond_loopback:
        log.info("writing endpoints need the token in %s", Path(settings.data_dir) / "token")
    log.info("gallery at http://%s/  (apps at /spaces/OWNER/NAME/ and http://OWNER-NAME.%s/)",
             settings.public_link_host, settings.public_link_host)
    # open event and log streams (a gallery tab) end when uvicorn starts to exit: sse-starlette watches for it
    config = uvicorn.Config(gateway, host=settings.host, port=settings.port, log_level="info",
                            proxy_headers=False, ws_max_size=64 * 1024 * 1024, access_log=False,
                            timeout_graceful_shutdown=int(settings.stop_grace_s) + 5)
    uvicorn.Server(config).run()
