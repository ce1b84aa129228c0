"""Where the runner listens and who is calling: from arguments, else from the app's environment.

An app process is an edge, so it reads its address here: SPACES_RUNNER_URL (``unix:///path/runner.sock`` or
``http://host:port``), SPACES_RUNNER_TOKEN and SPACES_APP_ID, all written by ``appkit.install.appkit_env``.
"""

from __future__ import annotations

import os
import urllib.parse

from spaces_runtime.appkit.wire import CONTENT_TYPE
from spaces_runtime.errors import RunnerError


class Address:
    """Where the runner listens and who is calling, from arguments or the app's environment."""

    def __init__(self, url: str | None = None, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0) -> None:
        self.url = url or os.environ.get("SPACES_RUNNER_URL") or ""
        if not self.url:
            raise RunnerError("no runner address: SPACES_RUNNER_URL is not set",
                              hint="run the app on the platform, or pass url='unix:///path/runner.sock'")
        parsed = urllib.parse.urlsplit(self.url)
        self.unix_path = parsed.path if parsed.scheme == "unix" else None
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout = timeout
        self.headers = {"content-type": CONTENT_TYPE}
        token = token if token is not None else os.environ.get("SPACES_RUNNER_TOKEN")
        # the app id is only what the app calls itself; the runner takes the identity from the signed token
        self.app_id = app_id if app_id is not None else os.environ.get("SPACES_APP_ID")
        if token:
            self.headers["authorization"] = f"Bearer {token}"


def unreachable(address: Address, exc: OSError) -> RunnerError:
    return RunnerError(f"no model runner answers at {address.url}: {exc.strerror or exc}",
                       hint="start the platform with its runner enabled (`spaces serve`), or `spaces runner`")


def quoted(name: str) -> str:
    """A model name as one path segment."""
    return urllib.parse.quote(name, safe="")
