"""The app's processes as the host sees them.

On the host, a sandboxed instance is three processes before the app forks anything: bwrap's outer process (the
platform's child, which it waits on), bwrap's init (pid 1 of the app's own PID namespace, which reaps orphans),
and the app itself: pid 2 of that namespace, the process that execs ``setpriv`` and then runs app.py. Operators
and the platform's own signals want the app, so it is found by that namespace pid among its cgroup's processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

APP_NS_PID = 2  # bwrap's init is 1 and forks the command first
BWRAP_SIGNAL_BASE = 128  # bwrap exits 128 + N when the app was killed by signal N, as shells report it


def ns_pids(status: str) -> list[int]:
    """The ``NSpid`` line of /proc/PID/status: the pid in each PID namespace, from the reader's own outward to
    the process's innermost (pure)."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "NSpid":
            return [int(part) for part in value.split()]
    return []


def ns_pids_of(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """[] when the process is gone."""
    with contextlib.suppress(OSError, ValueError):
        return ns_pids((proc / str(pid) / "status").read_text())
    return []


def find_app(candidates: list[int], proc: Path = Path("/proc"), nesting: int = 1) -> int | None:
    """The host pid of the app among an instance's cgroup ``candidates``: the one that is pid 2 of a PID
    namespace ``nesting`` levels below the platform's own (1 under bwrap; 2 for a fork of a zygote, whose own PID
    namespace lies between); None while bwrap has not forked it (or after it ended)."""
    depth = len(ns_pids_of(os.getpid(), proc)) + nesting
    for pid in candidates:
        levels = ns_pids_of(pid, proc)
        if len(levels) == depth and levels[-1] == APP_NS_PID:
            return pid
    return None


def signal_of_exit(code: int) -> signal.Signals | None:
    """The signal that killed the app, read from bwrap's exit code (pure): bwrap cannot die of the app's signal
    itself, so it exits 128 + N. None for an ordinary exit code."""
    with contextlib.suppress(ValueError):
        if BWRAP_SIGNAL_BASE < code < BWRAP_SIGNAL_BASE + signal.NSIG:
            return signal.Signals(code - BWRAP_SIGNAL_BASE)
    return None
