"""In-process fan-out of stage changes to server-sent-event listeners (gallery badges, `spaces deploy`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class EventHub:
    def __init__(self, queue_size: int = 256) -> None:
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._queue_size = queue_size

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._listeners):
            if queue.full():  # a stalled listener loses its oldest events, never blocks the platform
                queue.get_nowait()
            queue.put_nowait(event)

    async def listen(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._listeners.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.discard(queue)
