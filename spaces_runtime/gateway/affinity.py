"""Which task of an app with several (the swarm backend's replicas) a request goes to (pure but for the turn).

A visitor stays on one task: Gradio's queue (join, then the SSE stream of results) and Streamlit's WebSocket
(its session state lives in the process that served the page) break when their requests reach two processes. The
first answer to a visitor without a valid cookie sets ``spaces-replica`` naming the task it came from; later
requests carrying it go there while that task is healthy, and to the next in turn (with a new cookie) once it is
gone. The cookie holds a digest of the task's address, never the address.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace

from starlette.types import Scope

from spaces_runtime.gateway.routes import Route
from spaces_runtime.gateway.targets import Upstream

COOKIE = "spaces-replica"
_turn = itertools.count()


def key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def pick(upstream: Upstream, scope: Scope, route: Route) -> tuple[Upstream, tuple[bytes, bytes] | None]:
    """``upstream`` with ``url`` the visitor's task and ``replicas`` the order to try them in; and the Set-Cookie
    header to send when the visitor had no (valid) cookie."""
    replicas = upstream.replicas
    if len(replicas) < 2:
        return (replace(upstream, url=replicas[0]) if replicas else upstream), None
    by_key = {key(url): url for url in replicas}
    chosen = by_key.get(_cookie(scope) or "")
    header = None
    if chosen is None:
        chosen = replicas[next(_turn) % len(replicas)]
        path = "/" if route.via_host else route.prefix
        header = (b"set-cookie", f"{COOKIE}={key(chosen)}; Path={path}; HttpOnly; SameSite=Lax".encode("latin-1"))
    return replace(upstream, url=chosen, replicas=(chosen, *(u for u in replicas if u != chosen))), header


def without_first(upstream: Upstream) -> Upstream | None:
    """The same app minus the task that just refused a connection; None when none is left."""
    rest = upstream.replicas[1:]
    return replace(upstream, url=rest[0], replicas=rest) if rest else None


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE:
                    return v
    return None
