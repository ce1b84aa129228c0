"""When to restart a crashed app, and when to give up on it (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spaces_runtime.config import Settings


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float = 1.0
    max_s: float = 60.0
    loop_restarts: int = 5  # this many restarts inside loop_window_s is a crash loop
    loop_window_s: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(initial_s=settings.restart_backoff_initial_s, max_s=settings.restart_backoff_max_s,
                   loop_restarts=settings.crash_loop_restarts, loop_window_s=settings.crash_loop_window_s)

    def recent(self, restarts: Sequence[float], now: float) -> list[float]:
        """The restart times that still count: those inside the crash-loop window."""
        return [t for t in restarts if now - t < self.loop_window_s]

    def delay(self, restarts: Sequence[float], now: float) -> float:
        """Seconds to wait before the next restart: doubles with each recent restart, capped at max_s.

        An app that has run quietly for a whole window starts again at the initial delay.
        """
        return self.backoff(len(self.recent(restarts, now)))

    def backoff(self, attempt: int) -> float:
        """initial_s doubled ``attempt`` times, capped at max_s. Also the wait between launches of an app whose
        node is away, which has no crash loop to give up on."""
        return min(self.max_s, self.initial_s * 2.0 ** min(attempt, 62))

    def gives_up(self, restarts: Sequence[float], now: float) -> bool:
        """True when the app already restarted loop_restarts times inside the window: a crash loop."""
        return len(self.recent(restarts, now)) >= self.loop_restarts
