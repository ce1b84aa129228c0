"""What changes with an SDK's version, in one pure table: where an app answers its health check and its session
stream, and which flags and environment variables it reads. The supervisor (launch command, readiness probe), the
docker templates and the tests read it here; nothing else hard-codes a version-dependent path.

Verified by reading the released wheels (PyPI, 2026-12-01):
- Streamlit 1.16/1.17 ``web/server/server.py`` routes ``healthz``, ``stream`` and ``script-health-check`` only;
  1.18.0 moved them under ``_stcore/`` (``HEALTH_ENDPOINT = r"(?:healthz|_stcore/health)"``,
  ``STREAM_ENDPOINT = r"_stcore/stream"``), and 1.25 and later keep that. The flags the platform passes
  (server.port/address/baseUrlPath/headless/fileWatcherType, browser.gatherUsageStats) exist in 1.16 through
  1.67, as do their STREAMLIT_* environment forms.
- Gradio 3.50, 4.44, 5.x and 6.x read GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, GRADIO_ROOT_PATH and
  GRADIO_ANALYTICS_ENABLED and serve ``/config``; GRADIO_SSR_MODE exists from 5.0 (server-side rendering needs
  Node, so the platform turns it off), flagging is GRADIO_ALLOW_FLAGGING up to 4.x and GRADIO_FLAGGING_MODE from
  5.0. The queue is opt-in (``demo.queue()``, over a WebSocket) in 3.x and on by default (server-sent events) from
  4.0; the gateway passes both through unchanged, so it needs no per-era rule.
A version the table does not know (None: the platform's default, or newer than any row) gets the newest era.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Streamlit's toolbar inside a hosted app shows what a visitor needs, not the author's Deploy, Rerun and Clear
# cache (``client.toolbarMode`` "viewer"; "auto" shows them to every visitor on localhost). An environment variable,
# not a flag: 1.25 and 1.67 read client.toolbarMode, 1.17 has no such option, and `streamlit run` exits on a flag
# it does not know while it ignores a STREAMLIT_* variable it does not know (read in the 1.17/1.25/1.67 wheels).
STREAMLIT_ENV = {"STREAMLIT_CLIENT_TOOLBAR_MODE": "viewer"}

VersionKey = tuple[int, ...]
_LEADING_INT = re.compile(r"^(\d+)")


@dataclass(frozen=True)
class Era:
    """One SDK's behaviour from version ``since`` (inclusive) until the next row's ``since``."""

    sdk: str  # gradio | streamlit
    since: str
    health_path: str  # answers 200 once the app serves; relative to the app's base path
    stream_path: str | None  # Streamlit's session WebSocket; None for Gradio
    flagging_env: str | None  # Gradio's variable that turns flagging off; None for Streamlit
    ssr_env: bool  # Gradio reads GRADIO_SSR_MODE
    queue: str  # how Gradio's queue reaches the browser: "websocket" (opt-in), "sse" (default on); "" streamlit


ERAS: tuple[Era, ...] = (
    Era("gradio", "0", "config", None, "GRADIO_ALLOW_FLAGGING", ssr_env=False, queue="websocket"),
    Era("gradio", "4.0", "config", None, "GRADIO_ALLOW_FLAGGING", ssr_env=False, queue="sse"),
    Era("gradio", "5.0", "config", None, "GRADIO_FLAGGING_MODE", ssr_env=True, queue="sse"),
    Era("streamlit", "0", "healthz", "stream", None, ssr_env=False, queue=""),
    Era("streamlit", "1.18.0", "_stcore/health", "_stcore/stream", None, ssr_env=False, queue=""),
)


def version_key(version: str) -> VersionKey:
    """"4.44.0" → (4, 44, 0); pre-release tails are ignored ("5.0.0b3" → (5, 0, 0)), which is what era
    boundaries need: a beta of 5.0 already behaves like 5.0."""
    key: list[int] = []
    for part in version.strip().split("."):
        match = _LEADING_INT.match(part)
        if match is None:
            break
        key.append(int(match.group(1)))
        if match.group(1) != part:
            break
    return tuple(key)


def era(sdk: str, version: str | None) -> Era:
    """The row for ``sdk`` at ``version``; None (the platform's default SDK version) is the newest row."""
    rows = [row for row in ERAS if row.sdk == sdk]
    if not rows:
        raise ValueError(f"no SDK eras for sdk '{sdk}' (only gradio and streamlit have any)")
    if version is None:
        return rows[-1]
    key = version_key(version)
    return [row for row in rows if version_key(row.since) <= key][-1]


def gradio_env(version: str | None, *, host: str, port: int, root_path: str) -> dict[str, str]:
    """What Gradio reads so that an unchanged ``demo.launch()`` serves where the platform wants it."""
    row = era("gradio", version)
    env = {
        "GRADIO_SERVER_NAME": host,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ROOT_PATH": root_path.rstrip("/"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    if row.ssr_env:
        env["GRADIO_SSR_MODE"] = "false"  # server-side rendering would need Node in every app's environment
    return env


def streamlit_flags(version: str | None, *, host: str, port: int, base_path: str) -> list[str]:
    """``streamlit run`` flags; every Streamlit era in the table knows each of them (see the module's notes)."""
    era("streamlit", version)
    return [
        "--server.port", str(port),
        "--server.address", host,
        "--server.baseUrlPath", base_path.strip("/"),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
    ]


def image_env(sdk: str, version: str | None) -> dict[str, str]:
    """The fixed environment of an SDK's container image: it serves on 0.0.0.0:7860 like a Hugging Face Space,
    headless, without analytics; flagging off (the container's root is read-only) under the era's name for it."""
    if sdk == "gradio":
        row = era(sdk, version)
        env = {"GRADIO_NUM_PORTS": "1", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7860",
               "GRADIO_ANALYTICS_ENABLED": "False"}
        if row.flagging_env:
            env[row.flagging_env] = "never"
        if row.ssr_env:
            env["GRADIO_SSR_MODE"] = "false"
        return env
    if sdk == "streamlit":
        era(sdk, version)
        return {"STREAMLIT_SERVER_ADDRESS": "0.0.0.0", "STREAMLIT_SERVER_PORT": "7860",
                "STREAMLIT_SERVER_HEADLESS": "true", "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
                "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **STREAMLIT_ENV}
    return {}


def health_path(sdk: str, version: str | None) -> str:
    return era(sdk, version).health_path


def stream_path(version: str | None) -> str:
    path = era("streamlit", version).stream_path
    assert path is not None  # every streamlit row has one
    return path
