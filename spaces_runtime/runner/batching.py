"""Batching policy, pure: per-model queues with fair turns across apps, admission, dispatch timing, quotas.

Nothing here does I/O or reads a clock; callers pass ``now``. The scheduler owns the asyncio side.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spaces_runtime.errors import BusyError, QuotaExceededError


@dataclass(frozen=True)
class BatchLimits:
    max_batch_items: int = 32  # items (texts, images) stacked into one forward pass
    max_delay_s: float = 0.004  # longest a request waits for company while the device is idle
    max_queue_items: int = 1024  # per model, all apps together
    max_queue_items_per_app: int = 256  # per model and app: a flooding app hits this first


@dataclass(eq=False)
class Pending:
    """One request waiting for the device. ``n`` items go into the batch together; ``payload`` is opaque."""

    app: str
    model: str
    n: int
    enqueued_at: float
    deadline: float
    payload: Any = None
    token: Any = None  # the caller's handle (a future); the policy never touches it


@dataclass
class ModelQueue:
    """Requests for one model, one FIFO per app, served in round-robin turns so no app starves another."""

    per_app: dict[str, deque[Pending]] = field(default_factory=dict)
    turn: deque[str] = field(default_factory=deque)  # apps with queued work, next turn first
    items: int = 0

    def push(self, p: Pending) -> None:
        q = self.per_app.setdefault(p.app, deque())
        if not q:
            self.turn.append(p.app)
        q.append(p)
        self.items += p.n

    def requests(self) -> int:
        return sum(len(q) for q in self.per_app.values())

    def app_items(self, app: str) -> int:
        return sum(p.n for p in self.per_app.get(app, ()))

    def oldest(self) -> float | None:
        heads = [q[0].enqueued_at for q in self.per_app.values() if q]
        return min(heads) if heads else None

    def take(self, max_items: int, now: float) -> tuple[list[Pending], list[Pending]]:
        """The next batch (round-robin over apps, whole requests, up to ``max_items``) and expired requests."""
        batch: list[Pending] = []
        expired = self._drop_expired(now)
        used = 0
        while self.turn:
            app = self.turn[0]
            q = self.per_app[app]
            head = q[0]
            if batch and used + head.n > max_items:
                break
            q.popleft()
            self.items -= head.n
            batch.append(head)
            used += head.n
            self.turn.rotate(-1)
            if not q:
                self._forget(app)
            if used >= max_items:
                break
        return batch, expired

    def remove(self, p: Pending) -> bool:
        q = self.per_app.get(p.app)
        if q is None or p not in q:
            return False
        q.remove(p)
        self.items -= p.n
        if not q:
            self._forget(p.app)
        return True

    def _drop_expired(self, now: float) -> list[Pending]:
        expired: list[Pending] = []
        for app in list(self.per_app):
            q = self.per_app[app]
            keep = deque(p for p in q if p.deadline > now)
            expired.extend(p for p in q if p.deadline <= now)
            self.per_app[app] = keep
            if not keep:
                self._forget(app)
        self.items -= sum(p.n for p in expired)
        return expired

    def _forget(self, app: str) -> None:
        self.per_app.pop(app, None)
        if app in self.turn:
            self.turn.remove(app)


def admit(queue: ModelQueue, app: str, n: int, limits: BatchLimits, items_per_s: float) -> None:
    """Raise BusyError when queuing ``n`` more items would pass a bound; ``retry_after`` is the drain time."""
    mine = queue.app_items(app)
    if mine and mine + n > limits.max_queue_items_per_app:  # one oversized request alone is let in
        wait = retry_after(mine, items_per_s)
        raise BusyError(f"app '{app}' already has {mine} items queued for this model (limit "
                        f"{limits.max_queue_items_per_app})", retry_after_s=wait,
                        hint=f"retry after {wait:g} s or send fewer requests at once")
    if queue.items and queue.items + n > limits.max_queue_items:
        wait = retry_after(queue.items, items_per_s)
        raise BusyError(f"the model's queue is full ({queue.items} items, limit {limits.max_queue_items})",
                        retry_after_s=wait, hint=f"retry after {wait:g} s")


def retry_after(queued_items: int, items_per_s: float) -> float:
    """Seconds until ``queued_items`` drain at the observed rate, rounded up to a tenth; at least 0.1 s."""
    rate = max(items_per_s, 1.0)
    return max(0.1, math.ceil(queued_items / rate * 10) / 10)


def should_dispatch(queue: ModelQueue, now: float, limits: BatchLimits, expected_requests: int) -> bool:
    """With the device idle: go when the batch is full, when as many requests wait as came last time
    (more company is not coming), or when the oldest has waited ``max_delay_s``.

    ``expected_requests`` is how many requests the previous batch of this model served; a lone caller
    therefore never pays the delay, while 32 closed-loop callers get batched together.
    """
    oldest = queue.oldest()
    if oldest is None:
        return False
    if queue.items >= limits.max_batch_items or queue.requests() >= max(expected_requests, 1):
        return True
    return now - oldest >= limits.max_delay_s


def pick_model(queues: dict[str, ModelQueue]) -> str | None:
    """Among models with work, the one whose oldest request has waited longest (no model starves)."""
    best: tuple[float, str] | None = None
    for name, q in queues.items():
        oldest = q.oldest()
        if oldest is not None and (best is None or oldest < best[0]):
            best = (oldest, name)
    return best[1] if best else None


def split_charge(seconds: float, batch: Iterable[Pending]) -> dict[str, float]:
    """Device-seconds of one forward pass, shared between apps by their share of the batch's items."""
    counts: dict[str, int] = {}
    for p in batch:
        counts[p.app] = counts.get(p.app, 0) + p.n
    total = sum(counts.values()) or 1
    return {app: seconds * n / total for app, n in counts.items()}


@dataclass
class QuotaLedger:
    """Device-seconds used per app in a sliding window; apps over their limit are refused until it slides."""

    window_s: float = 60.0
    default_limit_s: float | None = None  # None: unlimited
    limits: dict[str, float | None] = field(default_factory=dict)
    charges: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    def limit_for(self, app: str) -> float | None:
        return self.limits.get(app, self.default_limit_s)

    def charge(self, app: str, seconds: float, now: float) -> None:
        self.charges.setdefault(app, deque()).append((now, seconds))

    def used(self, app: str, now: float) -> float:
        q = self.charges.get(app)
        if not q:
            return 0.0
        while q and q[0][0] <= now - self.window_s:
            q.popleft()
        return sum(s for _, s in q)

    def check(self, app: str, now: float) -> None:
        limit = self.limit_for(app)
        if limit is None:
            return
        used = self.used(app, now)
        if used >= limit:
            q = self.charges[app]
            resets = max(0.1, round(q[0][0] + self.window_s - now, 1))
            raise QuotaExceededError(
                f"app '{app}' used {used:.2f} of its {limit:g} device-seconds in the last {self.window_s:g} s",
                retry_after_s=resets,
                hint=f"wait {resets:g} s for the window to slide, or ask the operator for a larger quota")
