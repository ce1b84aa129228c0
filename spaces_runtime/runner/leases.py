"""Device leases for ZeroGPU-style apps (`@spaces.GPU(duration=...)`): a queue in front of the GPU.

A lease is granted when the device is free, lasts at most its duration, and its real length is charged to the
app's device-second quota when it ends.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from spaces_runtime.errors import BadInputError, BusyError, NotFoundError
from spaces_runtime.runner.batching import QuotaLedger


@dataclass
class Lease:
    id: str
    app: str
    granted_at: float
    duration_s: float
    expiry: asyncio.TimerHandle | None = None


class LeaseBoard:
    def __init__(self, ledger: QuotaLedger, max_duration_s: float, slots: int = 1, max_waiting: int = 64) -> None:
        self.ledger, self.max_duration_s, self.max_waiting = ledger, max_duration_s, max_waiting
        self.slots = asyncio.Semaphore(slots)
        self.active: dict[str, Lease] = {}
        self.waiting = 0
        self.ids = itertools.count(1)

    async def acquire(self, app: str, duration_s: float) -> Lease:
        if not 0 < duration_s <= self.max_duration_s:
            raise BadInputError(f"a lease of {duration_s:g} s was asked; the limit is {self.max_duration_s:g} s",
                                hint=f"use @spaces.GPU(duration={int(self.max_duration_s)}) or less")
        self.ledger.check(app, time.monotonic())
        if self.waiting >= self.max_waiting:
            raise BusyError(f"{self.waiting} leases are already waiting for the GPU", retry_after_s=5.0)
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        lease = Lease(f"l{next(self.ids)}", app, time.monotonic(), duration_s)
        lease.expiry = asyncio.get_running_loop().call_later(duration_s, self.release, lease.id)
        self.active[lease.id] = lease
        return lease

    def release(self, lease_id: str) -> float:
        lease = self.active.pop(lease_id, None)
        if lease is None:
            raise NotFoundError(f"no active lease '{lease_id}' (it may have run past its duration)")
        if lease.expiry:
            lease.expiry.cancel()
        used = min(time.monotonic() - lease.granted_at, lease.duration_s)
        self.ledger.charge(lease.app, used, time.monotonic())
        self.slots.release()
        return used
