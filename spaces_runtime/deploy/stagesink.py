"""The one place stage changes land: the store (which guards transitions), the event hub, and listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable

from spaces_runtime.errors import NotFoundError, StageTransitionError
from spaces_runtime.events import EventHub
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store

log = logging.getLogger(__name__)


class StageSink:
    """Created before the supervisor and the pipeline, which both report into it."""

    def __init__(self, store: Store, hub: EventHub) -> None:
        self.store = store
        self.hub = hub
        self.listeners: list[Callable[[str], None]] = []  # e.g. the gateway forgetting a cached upstream

    def __call__(self, space_id: str, stage: Stage, reason: str = "", error: str | None = None) -> None:
        try:
            record = self.store.set_stage(space_id, stage, reason, error)
        except StageTransitionError as exc:
            # the supervisor may report the end of an app the pipeline has already moved on from; the store
            # refusing it is the guard working, and the log says so
            log.warning("%s: %s (%s)", space_id, exc, reason)
            return
        except NotFoundError:
            return  # deleted meanwhile
        for listener in self.listeners:
            listener(space_id)
        self.hub.publish({"type": "stage", "id": space_id, "stage": stage.value, "reason": reason,
                          "error": error, "updated_at": record.updated_at})
