"""What the supervisor knows of one app between ticks, and the small rules read from it.

Its lifecycle (stage, instance, readiness, restarts, waits, the replacement) changes under the app's ``lock``
(see ``loop``). Not under it: ``last_touch`` and ``last_heard`` (the gateway's visits, one assignment each),
``live_probe`` (the liveness watch's own task) and ``changed``, which ``notify`` sets and replaces to wake whoever
waits for the app to settle.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.backend import Instance, LaunchSpec

SETTLING_STAGES = frozenset({Stage.APP_STARTING, Stage.RUNNING_APP_STARTING})  # not settled yet


@dataclass
class SupervisedApp:
    spec: LaunchSpec
    stage: Stage = Stage.STOPPED
    instance: Instance | None = None
    ready: bool = False
    launched_at: float = 0.0  # monotonic
    restart_at: float | None = None  # a crashed app starts again at this time
    restarts: list[float] = field(default_factory=list)
    node_waits: int = 0  # launches in a row refused because the app's node is away (NodeUnavailableError)
    waiting: str | None = None  # why it waits for its node, while it does: a settled outcome for callers
    # crashes after the app has served once are restarted; a crash before that is a broken app
    has_served: bool = False
    last_touch: float = field(default_factory=time.monotonic)
    generation: int = 0  # bumped by every public call, so a slow replacement knows it was superseded
    replacing: bool = False
    candidate: Instance | None = None
    live_checked: float = 0.0  # monotonic time of the last liveness check started (or of becoming ready)
    live_failures: int = 0  # unanswered liveness checks in a row
    last_heard: float = 0.0  # monotonic time the app last answered a visitor through the gateway
    live_probe: asyncio.Task[None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def launched_not_ready(app: SupervisedApp) -> bool:
    """Launched and not serving yet (a replacement starting beside a serving version is ``_await_ready``'s)."""
    return app.instance is not None and not app.ready


def notify(app: SupervisedApp) -> None:
    """Wake everyone waiting on this app; later waiters wait on a fresh event."""
    app.changed.set()
    app.changed = asyncio.Event()
