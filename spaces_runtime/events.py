"""In-process fan-out of stage changes to server-sent-event listeners (gallery badges, `spaces deploy`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

_CLOSED: dict[str, Any] = {"type": "closed"}


class EventHub:
    def __init__(self, queue_size: int = 256) -> None:
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._queue_size = queue_size
        self.closed = False

    def close(self) -> None:
        """The platform is stopping: end every stream now, so shutdown need not wait for open browser tabs."""
        self.closed = True
        self.publish(_CLOSED)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            if queue.full():  # a stalled listener loses its oldest events, never blocks the platform
                queue.get_nowait()
            queue.put_nowait(event)

    async def listen(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._listeners.add(queue)
        try:
            while not self.closed and (event := await queue.get()) is not _CLOSED:
                yield event
        finally:
            self._listeners.discard(queue)
