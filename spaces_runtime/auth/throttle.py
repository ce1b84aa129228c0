"""How often a web sign-in may fail: per account and per client address, in a sliding window (pure apart from
the clock). Passwords can be guessed; tokens (256 random bits) cannot, but a token form is limited per address
all the same. Only failures count, so people who type their password right are never slowed down; a blocked
account or address is refused before its password is checked, and told when to retry."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    per_account: int = 5
    per_address: int = 10
    window_s: float = 60.0


class SignInThrottle:
    def __init__(self, limits: Limits = Limits(), clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, account: str, address: str) -> int:
        """Seconds until this account and address may try again; 0: now."""
        now = self._clock()
        waits = [self._wait(f"account:{account.lower()}", self.limits.per_account, now)] if account else []
        waits.append(self._wait(f"address:{address}", self.limits.per_address, now))
        return max(waits)

    def failed(self, account: str, address: str) -> None:
        now = self._clock()
        for key in ((f"account:{account.lower()}",) if account else ()) + (f"address:{address}",):
            self._failures[key].append(now)
        if len(self._failures) > 10_000:  # many addresses: forget those whose window has passed
            stale = now - self.limits.window_s
            for key in [k for k, times in self._failures.items() if not times or times[-1] < stale]:
                del self._failures[key]

    def _wait(self, key: str, allowed: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.limits.window_s:
            times.popleft()
        if len(times) < allowed:
            return 0
        return max(1, math.ceil(times[-allowed] + self.limits.window_s - now))
