"""Where the runner listens and who is calling: from arguments, else from the app's environment.

An app process is an edge, so it reads its address here: SPACES_RUNNER_URL (``unix:///path/runner.sock`` or
``http://host:port``), SPACES_RUNNER_TOKEN and SPACES_APP_ID, all written by ``appkit.install.appkit_env``.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterator

from spaces_runtime.appkit.wire import CONTENT_TYPE
from spaces_runtime.errors import RunnerError

# How long a call waits for a runner that is not listening (yet): an app can start before its runner does (on a
# swarm the runner is another service, placed on the node on its own schedule) and a runner restarts in seconds;
# without a wait the app's first calls, often made at import, failed. SPACES_RUNNER_CONNECT_WAIT_S overrides it.
CONNECT_WAIT_S = 30.0
NOT_LISTENING = (FileNotFoundError, ConnectionRefusedError)  # no socket file yet; nobody accepting on it


class Address:
    """Where the runner listens and who is calling, from arguments or the app's environment."""

    def __init__(self, url: str | None = None, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0, connect_wait: float | None = None) -> None:
        self.url = url or os.environ.get("SPACES_RUNNER_URL") or ""
        if not self.url:
            raise RunnerError("no runner address: SPACES_RUNNER_URL is not set",
                              hint="run the app on the platform, or pass url='unix:///path/runner.sock'")
        parsed = urllib.parse.urlsplit(self.url)
        self.unix_path = parsed.path if parsed.scheme == "unix" else None
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout = timeout
        self.connect_wait = (connect_wait if connect_wait is not None
                             else float(os.environ.get("SPACES_RUNNER_CONNECT_WAIT_S", CONNECT_WAIT_S)))
        self.headers = {"content-type": CONTENT_TYPE}
        token = token if token is not None else os.environ.get("SPACES_RUNNER_TOKEN")
        # the app id is only what the app calls itself; the runner takes the identity from the signed token
        self.app_id = app_id if app_id is not None else os.environ.get("SPACES_APP_ID")
        if token:
            self.headers["authorization"] = f"Bearer {token}"


def connect_pauses(address: Address) -> Iterator[float]:
    """The pauses between tries to reach a runner that is not listening: 50 ms doubling to 1 s, until
    ``address.connect_wait`` is spent."""
    deadline = time.monotonic() + address.connect_wait
    pause, left = 0.05, address.connect_wait
    while left > 0:
        yield min(pause, left)
        pause, left = min(pause * 2, 1.0), deadline - time.monotonic()


def unreachable(address: Address, exc: OSError) -> RunnerError:
    waited = f" (waited {address.connect_wait:g} s for it)" if address.connect_wait > 0 else ""
    return RunnerError(f"no model runner answers at {address.url}: {exc.strerror or exc}{waited}",
                       hint="start the platform with its runner enabled (`spaces serve`), or `spaces runner`")


def quoted(name: str) -> str:
    """A model name as one path segment."""
    return urllib.parse.quote(name, safe="")
