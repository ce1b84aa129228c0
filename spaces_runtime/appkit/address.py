"""Where the runner listens and who is calling: from arguments, else from the app's environment.

An app process is an edge, so it reads its address here: SPACES_RUNNER_URL (``unix:///path/runner.sock`` or
``http://host:port``), SPACES_RUNNER_TOKEN and SPACES_APP_ID, all written by ``appkit.install.appkit_env``.
"""

from __future__ import annotations

import errno
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
NOT_LISTENING = {errno.ENOENT, errno.ECONNREFUSED}  # no socket file yet; nobody accepting on it


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
        self.connect_wait = min(timeout, connect_wait if connect_wait is not None else _wait_from_env())
        self.headers = {"content-type": CONTENT_TYPE}
        token = token if token is not None else os.environ.get("SPACES_RUNNER_TOKEN")
        # the app id is only what the app calls itself; the runner takes the identity from the signed token
        self.app_id = app_id if app_id is not None else os.environ.get("SPACES_APP_ID")
        if token:
            self.headers["authorization"] = f"Bearer {token}"


def _wait_from_env() -> float:
    raw = os.environ.get("SPACES_RUNNER_CONNECT_WAIT_S")
    if raw is None:
        return CONNECT_WAIT_S
    try:
        return float(raw)
    except ValueError:
        raise RunnerError(f"SPACES_RUNNER_CONNECT_WAIT_S is {raw!r}, not a number of seconds",
                          hint="set it to how long a call may wait for the runner, e.g. 30 (0: not at all)") from None


def connect_pauses(address: Address) -> Iterator[float]:
    """The pauses between tries to reach a runner that is not listening: 50 ms doubling to 1 s, until
    ``address.connect_wait`` is spent."""
    deadline = time.monotonic() + address.connect_wait
    pause, left = 0.05, address.connect_wait
    while left > 0:
        yield min(pause, left)
        pause, left = min(pause * 2, 1.0), deadline - time.monotonic()


class ConnectAttempts:
    """One connection's tries, for the sync and the async client alike: after a failed try, the pause before the
    next one while nothing listens at the address yet, else the error the caller raises."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.pauses = connect_pauses(address)
        self.paused = False

    def pause_after(self, exc: OSError) -> float:
        """Seconds to wait before trying again; raises RunnerError when the failure is not a runner that is
        still starting, or when the wait is spent."""
        if _not_listening(exc):
            pause = next(self.pauses, None)
            if pause is not None:
                self.paused = True
                return pause
        raise unreachable(self.address, exc, waited=self.paused) from None


def _not_listening(exc: OSError) -> bool:
    # asyncio's open_connection to a name with several addresses raises one OSError with no errno, saying
    # "Multiple exceptions: [Errno 111] Connect call failed ..." once per address
    return exc.errno in NOT_LISTENING or (exc.errno is None and "[Errno 111]" in str(exc))


def unreachable(address: Address, exc: OSError, *, waited: bool = False) -> RunnerError:
    how_long = f" (waited {address.connect_wait:g} s for it)" if waited else ""
    return RunnerError(f"no model runner answers at {address.url}: {exc.strerror or exc}{how_long}",
                       hint="start the platform with its runner enabled (`spaces serve`), or `spaces runner`")


def quoted(name: str) -> str:
    """A model name as one path segment."""
    return urllib.parse.quote(name, safe="")
