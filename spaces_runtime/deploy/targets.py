"""The gateway's view: where a space's requests go right now (``gateway.targets.TargetSource``), and what the API
shows of its running instance."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces_runtime.auth import rules
from spaces_runtime.auth.authenticate import Authenticator, Credentials
from spaces_runtime.deploy.lifecycle import Lifecycle
from spaces_runtime.errors import SpacesError
from spaces_runtime.gateway.targets import Failed, Missing, Pending, ResponseHeaders, StaticSite, Target, Upstream
from spaces_runtime.stages import ERROR_STAGES, Stage
from spaces_runtime.store import SpaceRecord, Store
from spaces_runtime.supervisor.loop import Supervisor

PRIVACY_TTL_S = 0.5  # a space made private is closed to strangers within this long
# swarm: a serving app with no healthy task right now (its /data being moved to another node, its task being
# rescheduled) holds a request this long for one to appear, rather than answering 502 at once
HOLD_S = 30.0
HOLD_POLL_S = 0.25
STARTING_STAGES = frozenset({Stage.BUILDING, Stage.APP_STARTING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING})
# The README's custom_headers that Hugging Face applies (its configuration reference allows only these three, for
# cross-origin isolation: SharedArrayBuffer, precise timers); other names are not applied there either.
CUSTOM_HEADERS = ("cross-origin-embedder-policy", "cross-origin-opener-policy", "cross-origin-resource-policy")
# disable_embedding: only the platform's own app page (same origin as the path link) may frame the app
NO_EMBEDDING = ("content-security-policy", "frame-ancestors 'self'")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: no CR/LF, so a value cannot start a new header


@dataclass(frozen=True)
class Runtime:
    """The running instance of a space, as the API shows it."""

    backend: str
    backend_ref: str
    upstream: str
    started_at: float


class SpaceTargets:
    def __init__(self, store: Store, supervisor: Supervisor, lifecycle: Lifecycle, auth: Authenticator,
                 replicas: Callable[[str], tuple[str, ...]] | None = None) -> None:
        self.store = store
        self.replicas = replicas  # the swarm backend's: where each healthy task of a space answers
        self.supervisor = supervisor
        self.lifecycle = lifecycle
        self.auth = auth
        self._private: dict[str, tuple[float, bool]] = {}

    def admits(self, owner: str, name: str, credentials: Credentials) -> bool:
        """Public spaces admit everyone at the cost of a remembered flag; a private one asks who is calling."""
        space_id = f"{owner}/{name}"
        if not self._is_private(space_id):
            return True
        try:
            who = self.auth.principal(credentials, space_id)
        except SpacesError:  # a bad token reaches nothing private
            return False
        return rules.may_see(who, space_id, private=True)

    def share_problem(self, owner: str, name: str, token: str) -> str | None:
        space_id = f"{owner}/{name}"
        key = self.store.share_key(space_id)
        if key is None:
            return "this share link is for a space that no longer exists"
        return self.auth.shares.check(token, space_id, key).problem or None

    def _is_private(self, space_id: str) -> bool:
        """Remembered for PRIVACY_TTL_S: reading SQLite on every proxied request would cost more than the relay."""
        now = time.monotonic()
        remembered = self._private.get(space_id)
        if remembered is not None and now - remembered[0] < PRIVACY_TTL_S:
            return remembered[1]
        record = self.store.peek(space_id)
        private = bool(record is not None and record.private)
        self._private[space_id] = (now, private)
        return private

    async def target(self, owner: str, name: str) -> Target:
        record = self.store.peek(f"{owner}/{name}")
        if record is None:
            return Missing()
        headers = response_headers(record.card)
        if record.card.get("sdk") == "static" and record.stage == Stage.RUNNING and record.code_dir:
            return StaticSite(root=Path(record.code_dir), headers=headers)
        upstream = self.supervisor.upstream(record.id)
        if upstream is not None:
            # gradio (GRADIO_ROOT_PATH) and streamlit (baseUrlPath) know their prefix; a docker app does not
            return Upstream(url=upstream, forward_prefix=record.card.get("sdk") != "docker", headers=headers,
                            replicas=await self._tasks(record.id))
        return not_serving(record)

    async def _tasks(self, space_id: str) -> tuple[str, ...]:
        """The swarm backend's healthy tasks of a serving space, waiting up to HOLD_S while it has none."""
        if self.replicas is None:
            return ()
        deadline = time.monotonic() + HOLD_S
        while not (found := self.replicas(space_id)) and time.monotonic() < deadline \
                and self.supervisor.upstream(space_id) is not None:
            await asyncio.sleep(HOLD_POLL_S)
        return found

    def touch(self, owner: str, name: str) -> None:
        self.supervisor.touch(f"{owner}/{name}")

    def heard_from(self, owner: str, name: str) -> None:
        self.supervisor.heard_from(f"{owner}/{name}")

    async def wake(self, owner: str, name: str) -> None:
        await self.lifecycle.wake(f"{owner}/{name}")

    def runtime(self, space_id: str) -> Runtime | None:
        for instance in self.supervisor.instances():
            if instance.space_id == space_id:
                return Runtime(backend=self.supervisor.backend_name, backend_ref=instance.backend_ref,
                               upstream=instance.upstream, started_at=instance.started_at)
        return None


def response_headers(card: dict[str, Any]) -> ResponseHeaders:
    """The headers the gateway puts on the app's responses, from its README (pure)."""
    custom = card.get("custom_headers") or {}
    replace = tuple((name.lower(), str(value).strip()) for name, value in custom.items()
                    if name.lower() in CUSTOM_HEADERS and _HEADER_VALUE.fullmatch(str(value).strip()))
    return ResponseHeaders(replace=replace, add=(NO_EMBEDDING,) if card.get("disable_embedding") else ())


def not_serving(record: SpaceRecord) -> Target:
    """What a visitor sees of a space that has no serving instance (pure)."""
    title = str(record.card.get("title") or record.name)
    if record.stage == Stage.SLEEPING:  # the gateway calls wake() and asks again
        return Pending(stage=Stage.SLEEPING, title=title, detail="waking up after a nap")
    if record.stage in ERROR_STAGES:
        return Failed(stage=record.stage, error=record.error or "")
    if record.stage in STARTING_STAGES or record.stage == Stage.RUNNING:
        detail = "building the environment" if record.stage in (Stage.BUILDING, Stage.RUNNING_BUILDING) \
            else record.error or "starting the app"  # a starting app with an error: it waits for its node
        return Pending(stage=record.stage, title=title, detail=detail)
    return Failed(stage=record.stage, error=f"this space is {record.stage.lower()}; restart it to use it")
