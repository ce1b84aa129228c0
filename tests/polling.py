"""Waiting in tests: poll a condition until it holds or a deadline passes; never sleep for a guessed time.

A sleep that guesses how long something takes is either too short on a loaded machine (a flaky test) or too
long everywhere (a slow suite). A poll returns as soon as the condition holds and fails with what it waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
POLL_S = 0.05


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *, interval: float = POLL_S,
               ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``predicate`` until it returns something truthy and return that; an AssertionError naming ``what``
    once ``timeout`` seconds passed. Exceptions in ``ignoring`` (a server not up yet) count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except ignoring as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout, last))
        time.sleep(interval)


async def wait_until_async(predicate: Callable[[], T | Awaitable[T]], timeout: float, what: str, *,
                           interval: float = POLL_S, ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """``wait_until`` for event-loop code: the predicate may be a plain function or a coroutine function, and
    the loop keeps running between checks."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except ignoring as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, timeout, last))
        await asyncio.sleep(interval)


def _timed_out(what: str, timeout: float, last: BaseException | None) -> str:
    return f"waited {timeout:g} s for {what}" + (f" (last error: {last!r})" if last is not None else "")


class AppNotAnswering(RuntimeError):
    """An app started directly by a test (or a bench) exited or never answered."""


def wait_answering(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 120) -> None:
    """Until ``url`` answers 200; fails at once, with the app's log tail, if ``process`` ends first."""
    def answers() -> bool:
        if process.poll() is not None:
            raise AppNotAnswering(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        return httpx.get(url, timeout=2).status_code == 200

    try:
        wait_until(answers, timeout, f"{url} to answer", interval=0.3, ignoring=(httpx.TransportError,))
    except AssertionError as exc:
        raise AppNotAnswering(f"{exc}:\n{log.read_text()[-3000:]}") from None


def wait_http(url: str, timeout_s: float = 90.0, expect: str | None = None) -> httpx.Response:
    """The response once ``url`` answers 200 (with ``expect`` in its body, when given)."""

    def answered() -> httpx.Response | None:
        response = httpx.get(url, timeout=5)
        return response if response.status_code == 200 and (expect is None or expect in response.text) else None

    return wait_until(answered, timeout_s, f"{url} to answer 200" + (f" with {expect!r}" if expect else ""),
                      interval=0.5, ignoring=(httpx.HTTPError,))
