"""A build's processes end at its deadline, when its deploy is cancelled, and when the platform dies (real
processes: a shell that starts a grandchild, as uv starts build backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from polling import wait_until

from builder.children import BUILD_CONTROL, BuildControl, run_streamed
from spaces_runtime.errors import BuildTimeoutError

# prints its grandchild's pid, then waits on it: both must go
FAMILY = ["sh", "-c", "sleep 300 & echo grandchild $!; echo working; wait"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_build_past_its_deadline_is_stopped_with_its_last_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    token = BUILD_CONTROL.set(BuildControl(limit_s=0.5))
    try:
        with pytest.raises(BuildTimeoutError, match="longer than 0.5 s") as failure:
            run_streamed(FAMILY, lines.append, dict(os.environ))
    finally:
        BUILD_CONTROL.reset(token)  # later tests of this process build without a deadline
    assert "working" in failure.value.log_tail
    grandchild = int(next(line for line in lines if line.startswith("grandchild")).split()[1])
    wait_until(lambda: not alive(grandchild), timeout=10, what="the build's grandchild to be killed too")


def test_a_cancelled_deploy_stops_its_build() -> None:
    control = BuildControl(limit_s=300)
    lines: list[str] = []
    outcome: list[int] = []

    def build() -> None:
        BUILD_CONTROL.set(control)
        outcome.append(run_streamed(FAMILY, lines.append, dict(os.environ))[0])

    worker = threading.Thread(target=build)
    worker.start()
    wait_until(lambda: any(line == "working" for line in lines), timeout=10, what="the build to start")
    control.stop()
    worker.join(10)
    assert outcome and outcome[0] != 0, "the build was killed, not left to finish"


def test_a_build_dies_with_the_platform(tmp_path: Path) -> None:
    """kill -9 of the process that runs the build: its child goes too (setpriv --pdeathsig)."""
    script = ("import os, sys\nfrom builder.children import run_streamed\n"
              "run_streamed(['sleep', '300'], lambda line: None, dict(os.environ))\n")
    platform = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    child = wait_until(lambda: _child_sleep(platform.pid), timeout=20, what="the build to start")
    platform.send_signal(signal.SIGKILL)
    platform.wait(10)
    wait_until(lambda: not alive(child), timeout=10, what="the build child to die with its parent")


def _child_sleep(parent: int) -> int | None:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[1] == "(sleep)" and int(fields[3]) == parent:
            return int(fields[0])
    return None
