"""`spaces serve`: the built platform behind uvicorn."""

from __future__ import annotations

import logging
import socket

import uvicorn

from spaces_runtime.config import Settings
from spaces_runtime.server.app import create_app
from spaces_runtime.wiring.admin import token_file
from spaces_runtime.wiring.build import build_platform

log = logging.getLogger("spaces_runtime")


def run_server(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # every readiness probe would be a line
    platform = build_platform(settings)
    gateway = create_app(platform)
    # a stage change may move the app (a swap, a stop): the gateway must not keep proxying to its old address
    platform.stages.listeners.append(lambda space_id: gateway.forget(*space_id.split("/", 1)))
    log.info("every write needs a token; the admin's is in %s (the CLI finds it there when it runs as this user;"
             " elsewhere: spaces login)", token_file(settings))
    for line in start_lines(settings, socket.gethostname()):
        log.info("%s", line)
    # open event and log streams (a gallery tab) end when uvicorn starts to exit: sse-starlette watches for it
    # X-Forwarded-For/-Proto only from the trusted proxies (uvicorn's ProxyHeadersMiddleware takes the rightmost
    # address that is not one of them): the throttle then sees each client's own address, Secure cookies the
    # scheme the browser used; from anyone else those headers change nothing
    config = uvicorn.Config(gateway, host=settings.host, port=settings.port, log_level="info",
                            proxy_headers=bool(settings.trusted_proxies),
                            forwarded_allow_ips=list(settings.trusted_proxies) or None,
                            ws_max_size=64 * 1024 * 1024, access_log=False,
                            timeout_graceful_shutdown=int(settings.stop_grace_s) + 5)
    uvicorn.Server(config).run()


def start_lines(settings: Settings, machine: str) -> list[str]:
    """Where to open the platform, said on start (pure). Links name the public host; listening beyond loopback
    without one they would say localhost, which no other machine opens: then say which link does."""
    public, port = settings.public_link_host, settings.port
    reach = machine if settings.host in ("0.0.0.0", "::") else settings.host
    lines = [f"gallery at http://{public}/  (apps at http://{public}/spaces/OWNER/NAME/ and "
             f"http://OWNER-NAME.{public}/)"]
    if not settings.listens_beyond_loopback:
        lines.append("only this machine opens these links; to share them on your network: "
                     "spaces serve --host 0.0.0.0 --public-host NAME:PORT")
    elif settings.public_host is None:
        lines.append(f"from other machines open http://{reach}:{port}/ — but the links this platform prints, "
                     f"shares and embeds say localhost:{port}: restart with --public-host {reach}:{port} (or "
                     "a name or address they resolve to this machine) so that every link works there too")
    return lines
