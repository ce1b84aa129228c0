"""The processes a build starts (uv, docker build): their output streamed line by line into the build log, and
their end bound to the platform's and to the build's deadline.

- They die with the platform: ``setpriv --pdeathsig KILL`` asks the kernel to kill the child when the thread that
  started it goes, so a SIGKILL of `spaces serve` leaves no uv or docker CLI behind (the engine cancels a build
  whose client went away). setpriv is util-linux's, on every Debian; where it is missing, children are still
  ended on timeouts and on graceful stops.
- They end at the build's deadline, or when the deploy is cancelled (a newer upload): the deploy pipeline sets
  ``BUILD_CONTROL`` (a context variable, so that it follows the build into the worker thread ``asyncio.to_thread``
  runs it in); a child still running then is killed with its process group, and a timed-out build fails with
  ``BuildTimeoutError`` and the log's last lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar

from spaces_runtime.errors import BuildTimeoutError
from spaces_runtime.logs import LogSink

_SETPRIV = shutil.which("setpriv")
KEPT_LINES = 200


class BuildControl:
    """One build's deadline and the processes it runs, so that either end can stop them."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.timed_out = False
        self._processes: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._timer = threading.Timer(limit_s, self._time_out)
        self._timer.daemon = True
        self._timer.start()

    def _time_out(self) -> None:
        self.timed_out = True
        self.stop()

    def stop(self) -> None:
        """Kill every process of the build now and any it starts later (its deploy is over)."""
        self._timer.cancel()
        with self._lock:
            self._stopped = True
            for process in self._processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    def add(self, process: subprocess.Popen[str]) -> None:
        with self._lock:
            self._processes.add(process)
            stopped = self._stopped
        if stopped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def discard(self, process: subprocess.Popen[str]) -> None:
        with self._lock:
            self._processes.discard(process)

    def finish(self) -> None:
        self._timer.cancel()


BUILD_CONTROL: ContextVar[BuildControl | None] = ContextVar("build_control", default=None)


def dying_with_platform(argv: list[str]) -> list[str]:
    """``argv`` killed by the kernel when the thread that starts it goes (see above)."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else argv


def run_streamed(argv: list[str], log: LogSink, env: Mapping[str, str],
                 keep: int | None = KEPT_LINES) -> tuple[int, list[str]]:
    """Run ``argv``, handing each output line to ``log`` as it comes; the exit code and the last ``keep`` lines
    (None: all of them)."""
    recent: deque[str] = deque(maxlen=keep)
    control = BUILD_CONTROL.get()
    with subprocess.Popen(dying_with_platform(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1, env=dict(env),
                          start_new_session=True) as process:
        if control is not None:
            control.add(process)
        assert process.stdout is not None
        for raw in process.stdout:
            recent.append(raw.rstrip("\n"))
            log(recent[-1])
        code = process.wait()
    if control is not None:
        control.discard(process)
        if control.timed_out:
            raise BuildTimeoutError(f"the build took longer than {control.limit_s:g} s and was stopped",
                                    log_tail="\n".join(list(recent)[-25:]),
                                    hint="make the build lighter, or raise SPACES_BUILD_TIMEOUT_S")
    return code, list(recent)
