"""The supervision loop: desired state → backend; readiness and liveness probes, restarts with backoff, stages,
sleep.

One small loop (uvicorn's supervisors): every ``probe_interval_s`` it looks at each app once: has the process
ended, is a starting app ready yet, has a running app been idle long enough to sleep, is a liveness check due.
Between these full ticks, apps that are starting are asked every READY_POLL_S whether they serve yet.
Liveness checks run as their own tasks (``liveness``); after ``LivenessPolicy.failures`` unanswered checks in a
row the app is restarted through the same backoff as a crash. Everything that changes an app's state holds that
app's lock, so the loop, the probes and the public calls never interleave on one app.

Stages are reported through ``on_stage(space_id, stage, reason, error)``; the deployer persists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable

import httpx

from spaces_runtime.config import Settings
from spaces_runtime.errors import AppRuntimeError, NodeUnavailableError, NotFoundError, SpacesError
from spaces_runtime.logs import LogBook
from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.appstate import SETTLING_STAGES, SupervisedApp, launched_not_ready, notify
from spaces_runtime.supervisor.backend import Backend, ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.backoff import RestartPolicy
from spaces_runtime.supervisor.liveness import LivenessWatch
from spaces_runtime.supervisor.probes import LivenessPolicy, probe, timeout_reason

StageCallback = Callable[[str, Stage, str, str | None], Awaitable[None] | None]
log = logging.getLogger(__name__)

ERROR_TAIL_LINES = 20
READY_POLL_S = 0.2  # a replacement is asked this often whether it serves yet (a refused connection is cheap)
RETIRE_AFTER_S = 2.0  # a replaced version keeps running this long, so requests already sent to it finish


class Supervisor:
    def __init__(self, backend: Backend, logs: LogBook, settings: Settings, on_stage: StageCallback,
                 liveness: LivenessPolicy | None = None) -> None:
        self.backend = backend
        self.logs = logs
        self.settings = settings
        self.on_stage = on_stage
        self.policy = RestartPolicy.from_settings(settings)
        self.watch = LivenessWatch(liveness or LivenessPolicy(), backend, logs, self._http, self._hung)
        self._apps: dict[str, SupervisedApp] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._retiring: dict[asyncio.Task[None], Instance] = {}
        self._launched = asyncio.Event()  # set by every launch of an app's instance (not a replacement's)
        self.sleep_times: dict[str, int] = {}  # a space's own sleep time (s; -1 never), set by the Hub's state

    # --- lifecycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the tick loop (idempotent)."""
        if self._task is None or self._task.done():
            self._client = self._client or httpx.AsyncClient(trust_env=False)
            self._task = asyncio.create_task(self._run(), name="spaces-supervisor")

    async def shutdown(self) -> None:
        """Stop every app (SIGTERM, then SIGKILL after stop_grace_s) and the loop; stages are left as they are,
        since the platform, not the apps, is going away."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        grace = self.settings.stop_grace_s
        doomed = [i for app in self._apps.values() for i in (app.instance, app.candidate) if i is not None]
        for task, instance in list(self._retiring.items()):
            task.cancel()
            doomed.append(instance)
        for app in self._apps.values():
            if app.live_probe is not None:
                app.live_probe.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(self.backend.stop(i, grace) for i in doomed),
                                                  return_exceptions=True), grace + 5)
        for app in self._apps.values():
            app.instance = app.candidate = None
            app.ready = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- public calls ----------------------------------------------------------------------------------
    async def run_app(self, spec: LaunchSpec) -> Stage:
        """Start ``spec``, or replace the serving version of the app without downtime. Returns the stage the
        app settles in: RUNNING, or RUNTIME_ERROR (or whatever a later call moved it to)."""
        await self.start()
        app = self._apps.get(spec.space_id)
        if app is not None and app.ready and app.instance is not None:
            return await self._replace(app, spec)
        if app is None:
            app = self._apps[spec.space_id] = SupervisedApp(spec=spec)
        return await self._start_fresh(app, spec, "starting the app")

    async def adopt(self, spec: LaunchSpec, instance: Instance) -> Stage:
        """Take over an app that outlived a platform restart (a container the backend adopted): probe it rather
        than start it again, so no app runs twice. It has served before, so a crash now restarts it."""
        await self.start()
        app = self._apps.setdefault(spec.space_id, SupervisedApp(spec=spec))
        async with app.lock:
            app.generation += 1
            app.spec, app.instance, app.ready, app.has_served = spec, instance, False, True
            app.restarts, app.restart_at, app.launched_at = [], None, time.monotonic()
            self.backend.attach_logs(instance, self.logs.sink(spec.space_id, "run"))
            await self._report(app, Stage.APP_STARTING, "taken over after a platform restart")
        return await self._settle(app)

    async def stop_app(self, space_id: str, stage: Stage | None = Stage.PAUSED) -> None:
        """Stop the app and report ``stage`` (PAUSED, STOPPED, SLEEPING, DELETING; None reports nothing).
        DELETING also forgets the app."""
        app = self._apps.get(space_id)
        if app is None:
            return
        async with app.lock:
            app.generation += 1
            await self._stop_instance(app)
            if stage is None:
                app.stage = Stage.STOPPED
                notify(app)
            else:
                await self._report(app, stage, "stopped")
            if stage is Stage.DELETING:
                self._apps.pop(space_id, None)

    async def restart_app(self, space_id: str) -> Stage:
        """Stop the app and start its last spec again (a hard restart, for a broken app)."""
        app = self._app(space_id)
        await self.start()
        return await self._start_fresh(app, app.spec, "restarting on request")

    async def wake(self, space_id: str) -> None:
        """Start a SLEEPING app again; return once it serves, raise AppRuntimeError if it does not."""
        app = self._app(space_id)
        await self.start()
        async with app.lock:
            if app.stage is Stage.SLEEPING:
                app.generation += 1
                await self._begin(app, app.spec, "waking up after a visit")
        stage = await self._settle(app)
        if stage is not Stage.RUNNING:
            raise AppRuntimeError(app.waiting or f"{space_id} did not wake up: its stage is {stage}")

    def upstream(self, space_id: str) -> str | None:
        """The base URL to proxy to while the app serves, else None."""
        app = self._apps.get(space_id)
        if app is None or not app.ready or app.instance is None:
            return None
        return app.instance.upstream

    def touch(self, space_id: str) -> None:
        """The gateway saw a visit: the app is not idle."""
        app = self._apps.get(space_id)
        if app is not None:
            app.last_touch = time.monotonic()

    def heard_from(self, space_id: str) -> None:
        """The app answered a visitor (a response, a stream chunk, a WebSocket message): whatever its health check
        says, it is making progress."""
        app = self._apps.get(space_id)
        if app is not None:
            app.last_heard = time.monotonic()

    def waiting(self, space_id: str) -> str | None:
        """Why the app waits for its node (its launch refused with NodeUnavailableError), while it does."""
        app = self._apps.get(space_id)
        return app.waiting if app is not None else None

    def stage(self, space_id: str) -> Stage | None:
        app = self._apps.get(space_id)
        return app.stage if app is not None else None

    def instances(self) -> list[Instance]:
        return [app.instance for app in self._apps.values() if app.instance is not None]

    @property
    def backend_name(self) -> str:
        return self.backend.name

    async def survivors(self) -> list[Instance]:
        """Apps that outlived the previous platform process (see ``Backend.adopt``)."""
        return await self.backend.adopt()

    async def stop_survivor(self, instance: Instance) -> None:
        """Stop a survivor no space wants any more (deleted, paused or failed meanwhile)."""
        await self.backend.stop(instance, self.settings.stop_grace_s)

    async def remove_data(self, space_id: str) -> None:
        await self.backend.remove_data(space_id)

    # --- starting and replacing ------------------------------------------------------------------------
    def _app(self, space_id: str) -> SupervisedApp:
        app = self._apps.get(space_id)
        if app is None:
            raise NotFoundError(f"the supervisor has no app {space_id}", hint="deploy it first")
        return app

    async def _start_fresh(self, app: SupervisedApp, spec: LaunchSpec, reason: str) -> Stage:
        async with app.lock:
            app.generation += 1
            await self._stop_instance(app)
            await self._begin(app, spec, reason)
        return await self._settle(app)

    async def _begin(self, app: SupervisedApp, spec: LaunchSpec, reason: str) -> None:
        app.spec = spec
        app.has_served = False
        app.restarts = []
        app.restart_at = None
        await self._report(app, Stage.APP_STARTING, reason)
        await self._launch(app)

    async def _settle(self, app: SupervisedApp) -> Stage:
        """The stage the app settles in. An app waiting for its node has settled too (APP_STARTING, the reason in
        ``waiting``): a deploy, restart or wake that waited for the node would wait for as long as it is away."""
        while app.stage in SETTLING_STAGES and app.waiting is None:
            await app.changed.wait()
        return app.stage

    async def _replace(self, app: SupervisedApp, spec: LaunchSpec) -> Stage:
        async with app.lock:
            app.generation += 1
            generation = app.generation
            app.replacing = True
            await self._report(app, Stage.RUNNING_APP_STARTING, "starting the new version")
        away = False
        try:
            self.logs.start_section(spec.space_id, "run", f"starting the new version ({spec.sdk})")
            app.candidate = await self.backend.launch(spec, self.logs.sink(spec.space_id, "run"))
            failure = await self._await_ready(spec, app.candidate)
        except NodeUnavailableError as exc:  # its node went away before the supervisor saw the old one go
            failure, away = str(exc), True
        except SpacesError as exc:
            failure = str(exc)
        except BaseException:  # cancelled (a newer deploy, a pause): the half-started version must not live on
            candidate, app.candidate = app.candidate, None
            if candidate is not None:
                await self.backend.stop(candidate, self.settings.stop_grace_s)
            raise
        finally:
            app.replacing = False
        async with app.lock:
            candidate, app.candidate = app.candidate, None
            if app.generation != generation:  # stopped or redeployed meanwhile
                if candidate is not None:
                    await self.backend.stop(candidate, self.settings.stop_grace_s)
                return app.stage
            if failure is not None and away:
                await self._stop_instance(app)  # the old version's task cannot run there either
                app.spec, app.has_served = spec, False
                await self._wait_for_node(app, failure)
                return app.stage
            if failure is not None:
                if candidate is not None:
                    await self.backend.stop(candidate, self.settings.stop_grace_s)
                await self._fail(app, failure)
                return app.stage
            await self._swap(app, spec, candidate)
            return app.stage

    async def _swap(self, app: SupervisedApp, spec: LaunchSpec, candidate: Instance | None) -> None:
        old = app.instance
        app.spec, app.instance, app.ready, app.has_served = spec, candidate, True, True
        app.restarts, app.restart_at, app.launched_at = [], None, time.monotonic()
        app.last_touch = app.live_checked = time.monotonic()
        app.live_failures = 0
        await self._report(app, Stage.RUNNING, "the new version is serving")
        if old is not None:
            task = asyncio.create_task(self._retire(old))
            self._retiring[task] = old
            task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _retire(self, old: Instance) -> None:
        await asyncio.sleep(RETIRE_AFTER_S)
        await self.backend.stop(old, self.settings.stop_grace_s)

    async def _await_ready(self, spec: LaunchSpec, instance: Instance) -> str | None:
        """Poll a replacement until it serves; None on success, else why it failed."""
        deadline = time.monotonic() + spec.startup_timeout_s
        while True:
            ended = await self.backend.exited(instance)
            if ended is not None:
                return f"the new version {ended.reason} before it was ready"
            if await probe(self._http(), spec, instance.upstream):
                return None
            if time.monotonic() > deadline:
                return timeout_reason(spec, instance)
            await asyncio.sleep(min(self.settings.probe_interval_s, READY_POLL_S))

    async def _launch(self, app: SupervisedApp) -> None:
        spec = app.spec
        if not app.node_waits:  # a retry while its node is away is one line of the same section
            self.logs.start_section(spec.space_id, "run", f"starting {spec.sdk} app {spec.app_file}")
        try:
            app.instance = await self.backend.launch(spec, self.logs.sink(spec.space_id, "run"))
        except NodeUnavailableError as exc:
            await self._wait_for_node(app, str(exc))
            return
        except SpacesError as exc:
            self.logs.write(spec.space_id, "run", f"could not start the app: {exc}")
            await self._fail(app, str(exc))
            return
        app.ready, app.launched_at, app.restart_at = False, time.monotonic(), None
        app.node_waits, app.waiting = 0, None  # launched: its node is back
        self._launched.set()  # the loop asks it often whether it serves yet

    async def _wait_for_node(self, app: SupervisedApp, why: str) -> None:
        """Not the app's failure, and not a crash loop: it launches again after a backoff delay, for as long as
        its node is away, so it runs again by itself once the node is back. The space says why it waits (once:
        a retry each minute must not fill its event history)."""
        delay = self.policy.backoff(app.node_waits)
        app.node_waits += 1
        app.restart_at, app.waiting = time.monotonic() + delay, why
        self.logs.write(app.spec.space_id, "run", f"{why}; trying again in {delay:.0f} s")
        if app.node_waits == 1:
            await self._report(app, Stage.APP_STARTING, "waiting for its node", why)
        else:
            notify(app)

    async def _stop_instance(self, app: SupervisedApp) -> None:
        candidate, app.candidate = app.candidate, None
        if candidate is not None:  # a replacement still starting goes with the app
            await self.backend.stop(candidate, self.settings.stop_grace_s)
        instance, app.instance, app.ready, app.restart_at = app.instance, None, False, None
        app.node_waits, app.waiting = 0, None  # a stop (a restart, a redeploy, a pause) ends a wait too
        if instance is not None:
            await self.backend.stop(instance, self.settings.stop_grace_s)

    # --- the loop ----------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            apps = list(self._apps.values())
            await asyncio.gather(*(self._check_safely(app, self._check) for app in apps))
            await self._poll_starting(until=time.monotonic() + self.settings.probe_interval_s)

    async def _poll_starting(self, until: float) -> None:
        """Until the next full tick, ask the apps that are starting every READY_POLL_S whether they serve yet: a
        forked app answers a fraction of a second after its launch, and its deploy or waking visitor waits for
        RUNNING, so a full tick's interval would be most of its start. Exits, timeouts and liveness stay on the
        full tick. With nothing starting, this waits for a launch rather than waking up."""
        while (left := until - time.monotonic()) > 0:
            self._launched.clear()
            pending = [app for app in self._apps.values() if launched_not_ready(app)]
            if not pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._launched.wait(), left)
                continue
            await asyncio.sleep(min(left, READY_POLL_S))
            await asyncio.gather(*(self._check_safely(app, self._check_answers) for app in pending))

    async def _check_safely(self, app: SupervisedApp, check: Callable[[SupervisedApp], Awaitable[None]]) -> None:
        try:
            async with app.lock:
                await check(app)
        except Exception:  # one app's trouble must not stop the supervision of the others
            log.exception("supervising %s failed", app.spec.space_id)

    async def _check(self, app: SupervisedApp) -> None:
        now = time.monotonic()
        if app.instance is None and app.restart_at is not None and now >= app.restart_at:
            await self._launch(app)
        if app.instance is None:
            return
        ended = await self.backend.exited(app.instance)
        if ended is not None:
            await self._on_exit(app, ended)
        elif not app.ready:
            await self._check_ready(app, now)
        elif self._idle(app, now):
            await self._stop_instance(app)
            await self._report(app, Stage.SLEEPING, f"no visits for {self.sleep_after(app.spec.space_id):g} s")
        else:
            self.watch.check(app, now)

    def _idle(self, app: SupervisedApp, now: float) -> bool:
        after = self.sleep_after(app.spec.space_id)
        return after > 0 and not app.replacing and now - app.last_touch > after

    def sleep_after(self, space_id: str) -> float:
        """Hugging Face's ``sleep_time`` of the space (seconds; -1: never), else SPACES_SLEEP_AFTER_S; 0: never."""
        own = self.sleep_times.get(space_id)
        if own is None:
            return self.settings.sleep_after_s
        return 0.0 if own < 0 else float(own)

    def set_sleep_time(self, space_id: str, seconds: int | None) -> None:
        """None: back to the platform's default."""
        if seconds is None:
            self.sleep_times.pop(space_id, None)
        else:
            self.sleep_times[space_id] = seconds

    async def _check_answers(self, app: SupervisedApp) -> None:
        """Between full ticks: a starting app that answers now is RUNNING (checked again under the lock)."""
        if launched_not_ready(app):
            await self._answers(app)

    async def _answers(self, app: SupervisedApp) -> bool:
        assert app.instance is not None
        if not await probe(self._http(), app.spec, app.instance.upstream):
            return False
        app.ready, app.has_served, app.last_touch = True, True, time.monotonic()
        app.live_checked, app.live_failures = app.last_touch, 0
        await self._report(app, Stage.RUNNING, "the app answers")
        return True

    async def _check_ready(self, app: SupervisedApp, now: float) -> None:
        assert app.instance is not None
        if await self._answers(app):
            return
        if now - app.launched_at > app.spec.startup_timeout_s:
            reason = timeout_reason(app.spec, app.instance)
            self.logs.write(app.spec.space_id, "run", reason)
            await self._stop_instance(app)
            await self._fail(app, reason)

    async def _on_exit(self, app: SupervisedApp, ended: ExitInfo) -> None:
        space_id = app.spec.space_id
        self.logs.write(space_id, "run", f"===== the app {ended.reason} =====")
        await self._stop_instance(app)  # its children may still run
        if app.replacing:  # the replacement in flight decides what happens next
            return
        if not app.has_served:
            await self._fail(app, f"the app {ended.reason} before it was ready")
        else:
            await self._restart_later(app, ended.reason)

    async def _restart_later(self, app: SupervisedApp, what: str) -> None:
        """Schedule a restart after the backoff delay, or give up on an app that keeps failing."""
        now = time.monotonic()
        if self.policy.gives_up(app.restarts, now):
            window = self.policy.loop_window_s
            await self._fail(app, f"the app {what} and crashed {len(app.restarts)} times "
                                  f"within {window:g} s; giving up")
            return
        delay = self.policy.delay(app.restarts, now)
        app.restarts = [*self.policy.recent(app.restarts, now), now]
        app.restart_at = now + delay
        self.logs.write(app.spec.space_id, "run", f"restarting in {delay:.1f} s")
        await self._report(app, Stage.APP_STARTING, f"the app {what}; restarting in {delay:.1f} s")

    async def _hung(self, app: SupervisedApp) -> None:
        """The liveness watch found the app hung: restarted through the same backoff as a crash."""
        await self._stop_instance(app)
        await self._restart_later(app, "stopped answering health checks")

    # --- reporting -----------------------------------------------------------------------------------------
    async def _fail(self, app: SupervisedApp, reason: str) -> None:
        await self._stop_instance(app)  # a failed replacement takes the old version down too, as on HF
        error = self.logs.tail(app.spec.space_id, "run", ERROR_TAIL_LINES)
        await self._report(app, Stage.RUNTIME_ERROR, reason, error or reason)

    async def _report(self, app: SupervisedApp, stage: Stage, reason: str, error: str | None = None) -> None:
        app.stage = stage
        try:
            result = self.on_stage(app.spec.space_id, stage, reason, error)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the deployer's bookkeeping failing must not wedge supervision
            log.exception("reporting %s → %s failed", app.spec.space_id, stage)
        finally:
            notify(app)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False)  # apps are local: no proxy from the env
        return self._client
