"""The runner's asyncio core: queue requests, form batches by the policy in ``batching``, run them on the worker.

One batch is on the device at a time; requests that arrive meanwhile queue and form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict
from typing import Any

from spaces_runtime.appkit.wire import ERRORS
from spaces_runtime.errors import DeadlineExceededError, RunnerError, WorkerDiedError
from spaces_runtime.runner import batching, metrics
from spaces_runtime.runner.batching import ModelQueue, Pending, QuotaLedger
from spaces_runtime.runner.catalog import ModelSpec
from spaces_runtime.runner.link import WorkerLink
from spaces_runtime.runner.options import RunnerOptions


def rebuild_error(d: dict[str, Any]) -> RunnerError:
    cls = ERRORS.get(d.get("code", ""), RunnerError)
    return cls(d.get("message", ""), hint=d.get("hint"))


class Scheduler:
    def __init__(self, options: RunnerOptions, specs: dict[str, ModelSpec]) -> None:
        self.options, self.specs, self.limits = options, specs, options.limits
        self.queues: dict[str, ModelQueue] = {}
        self.stats: dict[str, metrics.ModelStats] = {}
        self.expected: dict[str, int] = {}  # requests in the model's previous batch
        self.rate: dict[str, float] = {}  # items per device-second, smoothed
        self.ledger = QuotaLedger(options.quota_window_s, options.quota_device_s)
        self.worker_state: dict[str, Any] = {"resident": {}, "memory": {}, "evictions": 0}
        self.link = WorkerLink(self._worker_config(), self._on_state)
        self.wake = asyncio.Event()
        self._busy = False  # a batch is on the device
        self._wire_specs: dict[str, tuple[ModelSpec, dict[str, Any]]] = {}
        self._loop: asyncio.Task[None] | None = None

    def _worker_config(self) -> dict[str, Any]:
        o = self.options
        return {"device": o.device, "threads": o.threads, "budget_bytes": o.budget_bytes, "pinned": o.pinned}

    def _on_state(self, state: dict[str, Any]) -> None:
        if state:
            self.worker_state = state

    async def start(self) -> None:
        await self.link.start()
        self._loop = asyncio.create_task(self._dispatch_loop())

    async def stop(self) -> None:
        if self._loop:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await self.link.stop()

    # --- requests ------------------------------------------------------------------------------------
    async def predict(self, app: str, spec: ModelSpec, payload: Any, n: int,
                      deadline_s: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        now = time.monotonic()
        self.ledger.check(app, now)
        queue = self.queues.setdefault(spec.name, ModelQueue())
        batching.admit(queue, app, n, self.limits, self.rate.get(spec.name, 0.0))
        wait_s = deadline_s or self.options.default_deadline_s
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[dict[str, Any], dict[str, Any]]] = loop.create_future()
        fut.add_done_callback(_retrieve)  # a caller gone past its deadline must not leave warnings behind
        p = Pending(app, spec.name, n, now, now + wait_s, payload, fut)
        queue.push(p)
        # a timer, not wait_for(shield(...)): two fewer trips through the event loop per request
        timer = loop.call_later(wait_s + 0.05, self._expire, queue, p, wait_s)
        stats = self.stats.setdefault(spec.name, metrics.ModelStats())
        try:
            if not self._busy and batching.should_dispatch(queue, now, self.limits,
                                                           self.expected.get(spec.name, 1)):
                await self._run_next(spec.name, now)  # the device is idle and nobody else is coming: go now
            else:
                self.wake.set()
            result = await fut
        except RunnerError as exc:
            stats.record_request(time.monotonic() - now, exc.code)
            raise
        finally:
            timer.cancel()
        stats.record_request(time.monotonic() - now)
        return result

    def _expire(self, queue: ModelQueue, p: Pending, wait_s: float) -> None:
        queue.remove(p)  # still queued: it never runs; already running: its late result is dropped
        _settle(p, exc=_deadline(p, wait_s))

    async def _dispatch_loop(self) -> None:
        while True:
            name = batching.pick_model(self.queues)
            if name is None:
                await self._sleep(None)
                continue
            queue, now = self.queues[name], time.monotonic()
            if self._busy:  # a request is running its own batch inline (see predict)
                await self._sleep(None)
                continue
            if not batching.should_dispatch(queue, now, self.limits, self.expected.get(name, 1)):
                oldest = queue.oldest() or now
                await self._sleep(max(0.0, oldest + self.limits.max_delay_s - now))
                continue
            await self._run_next(name, now)

    async def _run_next(self, name: str, now: float) -> None:
        """Take the next batch of ``name`` and run it; one batch is on the device at a time."""
        spec = self.specs.get(name)
        max_items = self.limits.max_batch_items if spec and spec.stackable else 1
        batch, expired = self.queues[name].take(max_items, now)
        for p in expired:
            _settle(p, exc=_deadline(p, p.deadline - p.enqueued_at))
        if not batch:
            return
        self._busy = True
        try:
            await self._run(name, batch)
        except asyncio.CancelledError:  # the runner is stopping under a request that ran the batch inline
            for p in batch:
                _settle(p, exc=RunnerError("the runner stopped while this request ran"))
            raise
        finally:
            self._busy = False
            self.wake.set()  # whatever queued meanwhile forms the next batch

    async def _sleep(self, timeout: float | None) -> None:
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)

    async def _run(self, name: str, batch: list[Pending]) -> None:
        spec = self.specs.get(name)
        if spec is None:  # removed while queued
            for p in batch:
                _settle(p, exc=RunnerError(f"model '{name}' was removed while this request waited"))
            return
        msg = {"op": "run", "spec": self._wire_spec(spec), "payloads": [p.payload for p in batch]}
        try:
            reply = await self.link.call(msg)
        except WorkerDiedError as exc:
            for p in batch:
                _settle(p, exc=exc)
            return
        if not reply["ok"]:
            for p in batch:
                _settle(p, exc=rebuild_error(reply["error"]))
            return
        self._account(name, batch, reply["compute_s"])
        for p, result in zip(batch, reply["results"], strict=True):
            if isinstance(result, dict) and result.get("error"):
                _settle(p, exc=rebuild_error(result))
            else:
                _settle(p, result=result)

    def _wire_spec(self, spec: ModelSpec) -> dict[str, Any]:
        """``asdict`` deep-copies; a spec changes only on upload, so its dict is made once per version."""
        cached = self._wire_specs.get(spec.name)
        if cached is None or cached[0] is not spec:
            cached = self._wire_specs[spec.name] = (spec, asdict(spec))
        return cached[1]

    def _account(self, name: str, batch: list[Pending], compute_s: float) -> None:
        now, items = time.monotonic(), sum(p.n for p in batch)
        for app, seconds in batching.split_charge(compute_s, batch).items():
            self.ledger.charge(app, seconds, now)
        self.stats.setdefault(name, metrics.ModelStats()).record_batch(items, len(batch), compute_s)
        self.expected[name] = len(batch)
        rate = items / max(compute_s, 1e-6)
        self.rate[name] = rate if name not in self.rate else 0.8 * self.rate[name] + 0.2 * rate

    # --- models --------------------------------------------------------------------------------------
    async def load(self, spec: ModelSpec, pin: bool = False) -> None:
        reply = await self.link.call({"op": "load", "spec": asdict(spec), "pin": pin})
        if not reply["ok"]:
            raise rebuild_error(reply["error"])

    async def check(self, spec: ModelSpec) -> None:
        """Have the worker load ``spec``'s file once without keeping it; raises BadInputError if it cannot."""
        reply = await self.link.call({"op": "check", "spec": asdict(spec)})
        if not reply["ok"]:
            raise rebuild_error(reply["error"])

    async def unload(self, name: str) -> None:
        await self.link.call({"op": "unload", "name": name})

    def models(self) -> list[dict[str, Any]]:
        resident = self.worker_state.get("resident", {})
        pinned = set(self.worker_state.get("pinned", ()))
        device = self.worker_state.get("memory", {}).get("device")
        return [{**spec.public(), "loaded": name in resident, "resident_bytes": resident.get(name),
                 "pinned": name in pinned, "device": device if name in resident else None}
                for name, spec in sorted(self.specs.items())]

    def snapshot(self) -> dict[str, Any]:
        depth = {name: q.items for name, q in self.queues.items()}
        snap = metrics.snapshot(self.stats, depth, self.worker_state.get("memory", {}))
        snap["evictions"] = self.worker_state.get("evictions", 0)
        snap["worker"] = {"pid": self.link.pid, "restarts": self.link.restarts, "last_exit": self.link.last_exit}
        return snap


def _deadline(p: Pending, wait_s: float) -> DeadlineExceededError:
    return DeadlineExceededError(f"the request for '{p.model}' waited {wait_s:.2f} s, past its deadline",
                                 hint="the runner is busy; retry later or allow a longer deadline")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _settle(p: Pending, result: Any = None, exc: BaseException | None = None) -> None:
    fut = p.token
    if fut is None or fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
