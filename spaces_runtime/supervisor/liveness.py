"""Liveness checks of serving apps: each check is its own task beside the supervisor's tick (a hung app makes
its probe wait for the timeout, which must stall neither the tick nor the app's lock), and its answer is counted
under the app's lock. ``LivenessPolicy`` (``probes``) says when unanswered checks make a hang; the supervisor
decides what a hang costs (``on_hung``: a restart through the crash backoff)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx

from spaces_runtime.logs import LogBook
from spaces_runtime.supervisor.appstate import SupervisedApp
from spaces_runtime.supervisor.backend import Backend, Instance
from spaces_runtime.supervisor.probes import LivenessPolicy, probe

log = logging.getLogger(__name__)


class LivenessWatch:
    def __init__(self, policy: LivenessPolicy, backend: Backend, logs: LogBook,
                 http: Callable[[], httpx.AsyncClient], on_hung: Callable[[SupervisedApp], Awaitable[None]]) -> None:
        self.policy = policy
        self.backend = backend
        self.logs = logs
        self.http = http
        self.on_hung = on_hung

    def check(self, app: SupervisedApp, now: float) -> None:
        """Start a liveness check when one is due; it runs beside the loop, not inside this app's lock."""
        if app.replacing or app.live_probe is not None or not self.policy.due(app.live_checked, now):
            return
        assert app.instance is not None
        since, app.live_checked = app.live_checked, now  # visitors answered since the previous check count
        task = asyncio.create_task(self._probe(app, app.instance, since), name=f"liveness {app.spec.space_id}")
        app.live_probe = task
        task.add_done_callback(lambda _: _forget_probe(app, task))

    async def _probe(self, app: SupervisedApp, instance: Instance, since: float) -> None:
        try:
            answered = await probe(self.http(), app.spec, instance.upstream, self.policy.timeout())
            async with app.lock:
                if app.instance is not instance or not app.ready or app.replacing:
                    return  # stopped, restarted or replaced meanwhile: this answer is about nothing
                await self._count(app, answered, served=app.last_heard >= since)
        except Exception:  # one app's trouble must not stop the supervision of the others
            log.exception("liveness check of %s failed", app.spec.space_id)

    async def _count(self, app: SupervisedApp, answered: bool, served: bool) -> None:
        space_id, policy = app.spec.space_id, self.policy
        held = None if answered else self.backend.held(space_id)
        if held is not None:  # down on purpose, and back by itself: no count towards a hang
            self.logs.write(space_id, "run", f"health check: no answer; {held}")
            return
        app.live_failures = policy.count(app.live_failures, answered, served)
        if answered:
            return
        if served:
            self.logs.write(space_id, "run", f"health check: no answer within {policy.timeout_s:g} s, but the app "
                                             "answered visitors meanwhile: busy (or starved of CPU), not hung")
            return
        self.logs.write(space_id, "run", f"health check {app.live_failures} of {policy.failures}: no answer "
                                         f"within {policy.timeout_s:g} s")
        if policy.is_hung(app.live_failures):
            self.logs.write(space_id, "run", "===== the app stopped answering health checks =====")
            await self.on_hung(app)


def _forget_probe(app: SupervisedApp, task: asyncio.Task[None]) -> None:
    if app.live_probe is task:
        app.live_probe = None
