"""What the gateway asks the platform about an app, and the answers it understands.

The lead's deployer implements ``TargetSource``; the gateway never looks at the store or the supervisor itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spaces_runtime.auth.authenticate import Credentials

RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class ResponseHeaders:
    """What the platform adds to every HTTP response of an app, whichever link form reached it (pure).

    ``replace``: each replaces the app's own header of that name (Hugging Face sets a README's
    ``custom_headers`` at its proxy, so the README wins). ``add``: sent beside the app's own headers; a browser
    enforces every Content-Security-Policy header it receives, so an added ``frame-ancestors`` policy narrows who
    may frame the app without dropping a policy the app sets itself. Names are lower-case.
    """

    replace: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.replace or self.add)

    def apply(self, headers: RawHeaders) -> RawHeaders:
        if not self:
            return headers
        replaced = {name.encode("latin-1") for name, _ in self.replace}
        kept = [(k, v) for k, v in headers if k.lower() not in replaced]
        return kept + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (*self.replace, *self.add)]


@dataclass(frozen=True)
class Upstream:
    """The app serves at ``url`` (e.g. "http://127.0.0.1:41234").

    ``forward_prefix``: whether the app expects /spaces/{owner}/{name} in front of its paths. True for Gradio
    (GRADIO_ROOT_PATH; it also answers without the prefix) and Streamlit (--server.baseUrlPath); False for
    docker apps that know nothing of the prefix. Either way it holds for both link forms.
    """

    url: str
    forward_prefix: bool = True
    headers: ResponseHeaders = field(default_factory=ResponseHeaders)
    # several tasks of one app (the swarm backend): the gateway picks one per visitor (gateway.affinity); empty:
    # ``url`` is the only one
    replicas: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaticSite:
    """A static app: the gateway serves the files under ``root`` itself (index.html for folders)."""

    root: Path
    headers: ResponseHeaders = field(default_factory=ResponseHeaders)


@dataclass(frozen=True)
class Pending:
    """Building, starting, or asleep: a page that reloads itself (503 + Retry-After). A ``stage`` of
    SLEEPING makes the gateway call ``TargetSource.wake`` first."""

    stage: str
    title: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Failed:
    """The app is in an error stage: an error page (502) that shows ``error``."""

    stage: str
    error: str = ""


@dataclass(frozen=True)
class Missing:
    """No such app: a 404 page."""


Target = Upstream | StaticSite | Pending | Failed | Missing


class TargetSource(Protocol):
    def admits(self, owner: str, name: str, credentials: Credentials) -> bool:
        """Whether the caller may reach owner/name (a private space the caller may not see is Missing)."""
        ...

    def share_problem(self, owner: str, name: str, token: str) -> str | None:
        """None when the share link token opens owner/name, else why not."""
        ...

    async def target(self, owner: str, name: str) -> Target:
        """Where requests for owner/name go right now."""
        ...

    def touch(self, owner: str, name: str) -> None:
        """A visit reached the app (keeps it awake); called for every proxied request and WebSocket message."""
        ...

    def heard_from(self, owner: str, name: str) -> None:
        """The app answered: a response, a chunk of a stream, a WebSocket message (proof it is not hung)."""
        ...

    async def wake(self, owner: str, name: str) -> None:
        """Start a sleeping app; return once it serves (raise if it cannot)."""
        ...
