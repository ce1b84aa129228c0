"""Which host process is a sandboxed app (what `spaces status` shows as its backend_ref), and how its end reads."""

from __future__ import annotations

import os
from pathlib import Path

from spaces_runtime.sandbox.processes import find_app, ns_pids, signal_of_exit
from spaces_runtime.supervisor.process import describe_sandboxed_exit


def _proc(root: Path, pid: int, nspid: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "status").write_text(f"Name:\tx\nPid:\t{pid}\nNSpid:\t{nspid}\nUid:\t0\t0\t0\t0\n")


def test_nspid_lists_the_pid_in_each_namespace_outermost_first() -> None:
    assert ns_pids("Name:\tpython\nNSpid:\t4518\t2\nVmRSS:\t1 kB\n") == [4518, 2]
    assert ns_pids("Name:\tkthreadd\n") == []


def test_the_app_is_pid_2_one_namespace_below_the_platform(tmp_path: Path) -> None:
    _proc(tmp_path, os.getpid(), str(os.getpid()))
    _proc(tmp_path, 100, "100")  # bwrap's outer process, in the platform's namespace
    _proc(tmp_path, 101, "101\t1")  # bwrap's init
    _proc(tmp_path, 102, "102\t2")  # the app
    _proc(tmp_path, 103, "103\t3")  # a child of the app
    _proc(tmp_path, 200, "200\t7\t2")  # pid 2 of a namespace nested inside the app's: not the app
    assert find_app([100, 101, 103, 200, 102], tmp_path) == 102
    assert find_app([100, 101], tmp_path) is None  # not forked yet
    assert find_app([100, 999], tmp_path) is None  # gone


def test_bwrap_exit_codes_read_as_the_apps_own_end() -> None:
    assert describe_sandboxed_exit(3).reason == "exited with code 3"
    assert describe_sandboxed_exit(137).reason == "killed by SIGKILL (9)"
    assert describe_sandboxed_exit(143).reason == "killed by SIGTERM (15)"
    assert describe_sandboxed_exit(-9).reason == "killed by SIGKILL (9)"  # bwrap itself was killed
    assert describe_sandboxed_exit(1).reason == "exited with code 1"  # bwrap's own failure: its message is logged
    assert signal_of_exit(128) is None and signal_of_exit(255) is None
