"""Apps forked from a zygote on the process backend's sandbox: a real `spaces serve` (SPACES_ZYGOTE=1: it is
off by default), real Gradio and Streamlit apps, real clients.

A forked app must not be able to tell it was not exec'd: the probe app reports what an app sees of itself, and a
twin of it that is exec'd (a space variable the SDK could read at import sends its launch to exec) must report
the same shape. Sleeping apps (their own sleep time, set by `spaces settings` and by huggingface_hub) hold no
process and are woken from the zygote by a browser, gradio_client and a Streamlit WebSocket, each served with no
error. Last, the zygote is killed while an app is being forked: nothing of that app stays behind and it runs
again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from polling import wait_until
from prerequisites import missing

from example_checks import check_streamlit_script_runs
from spaces_harness import Platform, gradio_readme, write_app
from spaces_runtime.sandbox.launcher import slug
from spaces_runtime.supervisor.docker import platform_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
UID_BASE = 200_000_000

PROBE = '''
import json, os, pathlib, random, signal, sys
import numpy
import gradio as gr

def facts(_: str) -> str:
    status = dict(line.split(":", 1) for line in pathlib.Path("/proc/self/status").read_text().splitlines())
    caps = {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}
    signals = {s.name: str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE,
                                                           signal.SIGCHLD, signal.SIGHUP)}
    return json.dumps({
        "file": __file__, "main_file": sys.modules["__main__"].__file__, "name": __name__, "argv": sys.argv,
        "orig_argv_tail": sys.orig_argv[1:], "path0": sys.path[0], "cwd": os.getcwd(), "env": sorted(os.environ),
        "pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "pidns": os.readlink("/proc/self/ns/pid"), "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "hostname": os.uname().nodename, "caps": caps, "signals": signals,
        "cgroup": pathlib.Path("/proc/self/cgroup").read_text(),
        "mounts": sorted({line.split()[4] for line in open("/proc/self/mountinfo")} - {"/proc/sys"}),
        "random": random.random(), "numpy_random": float(numpy.random.random()),
        "zygote_modules": [m for m in sys.modules if "zygote" in m or m.startswith("spaces_runtime")],
    })

demo = gr.Interface(facts, "text", "text", api_name="facts")
demo.launch()
'''
STREAMLIT = '''---
title: Sleepy Streamlit
sdk: streamlit
sdk_version: 1.67.0
app_file: app.py
---
'''
STREAMLIT_APP = "import streamlit as st\nst.title('awake and well')\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("zygote")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false", "SPACES_ZYGOTE": "1"})
    (root / "data").mkdir()
    server.start()
    try:
        probe = write_app(root / "probe", {"README.md": gradio_readme("Probe"), "app.py": PROBE})
        for name in ("alice/probe", "alice/probe2", "alice/twin"):
            server.cli("deploy", str(probe), "--name", name, check=True)
        server.cli("variables", "set", "alice/twin", "HF_EXEC_TWIN", "1", check=True)  # restarts it, exec'd
        wait_until(lambda: "starting it with exec" in _run_log(server, "alice/twin"), 120, "the twin exec'd")
        server.wait_for("alice/twin")
        folder = write_app(root / "st", {"README.md": STREAMLIT, "app.py": STREAMLIT_APP})
        server.cli("deploy", str(folder), "--name", "alice/st", check=True)
        yield server
    finally:
        server.stop()


def _run_log(platform: Platform, space: str) -> str:
    return platform.cli("logs", space).stdout


def _facts(platform: Platform, space: str) -> dict[str, Any]:
    answer = Client(f"{platform.url}/spaces/{space}/", verbose=False).predict("x", api_name="/facts")
    return json.loads(str(answer))  # type: ignore[no-any-return]


def test_a_forked_app_sees_itself_as_an_exec_d_one_does(platform: Platform) -> None:
    assert "forked from the gradio zygote" in _run_log(platform, "alice/probe")
    assert "zygote: the space sets HF_EXEC_TWIN" in _run_log(platform, "alice/twin")
    forked, other, execd = (_facts(platform, s) for s in ("alice/probe", "alice/probe2", "alice/twin"))
    execd["env"].remove("HF_EXEC_TWIN")
    same = ("file", "main_file", "name", "argv", "orig_argv_tail", "path0", "cwd", "env", "pid", "ppid", "groups",
            "procs", "hostname", "caps", "signals", "cgroup", "mounts", "zygote_modules")
    assert {k: forked[k] for k in same} == {k: execd[k] for k in same}
    assert forked["file"] == "/home/user/app/app.py" and forked["argv"] == ["app.py"] and forked["pid"] == 2
    assert forked["zygote_modules"] == []
    # each space its own unprivileged uid and PID namespace, as exec'd
    uids = {forked["uid"], other["uid"], execd["uid"]}
    assert len(uids) == 3 and min(uids) >= UID_BASE and forked["uid"] == forked["gid"]
    host_pidns = os.readlink("/proc/self/ns/pid")
    assert len({forked["pidns"], other["pidns"], execd["pidns"], host_pidns}) == 4
    # fresh random state in every fork: Python's and numpy's (which the SDK imported in the zygote)
    assert forked["random"] != other["random"] and forked["numpy_random"] != other["numpy_random"]


def _put_to_sleep(platform: Platform, space: str, hub: bool = False) -> None:
    """Its own sleep time of 2 s, then never once asleep (so a wake is not undone by the next idle second)."""
    if hub:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=platform.url, token=platform.token)
        api.set_space_sleep_time(space, sleep_time=2)
    else:
        platform.cli("settings", space, "--sleep-time", "2", check=True)
    wait_until(lambda: platform.space(space)["stage"] == "SLEEPING", 120, f"{space} asleep")
    assert not _app_processes(platform, space), "a sleeping app holds no process"
    platform.cli("settings", space, "--sleep-time", "-1", check=True)


def _app_processes(platform: Platform, space: str) -> list[int]:
    """The host pids in the space's instance cgroups (by name: uids are only unique within one platform)."""
    marker = f"/sbx{platform_id(platform.data_dir)[:8]}-{slug(space)}-"
    found = []
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            if marker in cgroup.read_text():
                found.append(int(cgroup.parent.name))
        except OSError:
            continue
    return found


def test_a_sleeping_app_wakes_for_gradio_client(platform: Platform) -> None:
    _put_to_sleep(platform, "alice/probe2")
    assert _facts(platform, "alice/probe2")["pid"] == 2
    assert platform.space("alice/probe2")["stage"] == "RUNNING"
    assert "forked from the gradio zygote" in _run_log(platform, "alice/probe2").rsplit("=====", 1)[-1]


def test_a_sleeping_app_wakes_for_a_streamlit_websocket(platform: Platform) -> None:
    platform.wait_for("alice/st")
    _put_to_sleep(platform, "alice/st", hub=True)
    check_streamlit_script_runs(f"{platform.url}/spaces/alice/st/")
    assert "forked from the streamlit zygote" in _run_log(platform, "alice/st").rsplit("=====", 1)[-1]


def test_a_sleeping_app_wakes_for_a_browser_visit(platform: Platform) -> None:
    if not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None:
        missing("Chromium (apt-get install chromium) and Playwright (pip install playwright) are needed")
    _put_to_sleep(platform, "alice/probe")
    seen: dict[str, Any] = {}
    browsing = threading.Thread(target=_visit, args=(f"{platform.url}/spaces/alice/probe/", seen))
    browsing.start()  # Playwright's sync API in a thread of its own: its loop must not stay in the main thread
    browsing.join(300)
    assert seen.get("error") is None, seen.get("error")
    assert seen["answered"], seen
    assert seen["server_errors"] == [], seen["server_errors"]
    assert platform.space("alice/probe")["stage"] == "RUNNING"


def _visit(url: str, seen: dict[str, Any]) -> None:
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))  # the browser tests' helpers
        from browsing import CHROMIUM, CHROMIUM_ARGS
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            errors: list[str] = []
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if _server_error(r) else None)
            page.goto(url)
            seen["page"] = lambda: f"{page.url}: {page.content()[:1500]}"  # what it shows, if it fails
            page.get_by_role("button", name="Submit").click(timeout=120_000)  # the app itself, woken
            page.locator("textarea").last.wait_for()
            answered = page.wait_for_function(
                "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('pidns'))",
                timeout=60_000)
            seen.update(answered=bool(answered), server_errors=errors)
            browser.close()
    except Exception as exc:  # reported to the test's thread, with what the page showed
        shown = seen.pop("page", None)
        try:
            page_text = shown() if shown else "none"
        except Exception as closed:  # the page went with Playwright: say so rather than lose the first error
            page_text = f"unreadable ({closed!r})"
        seen["error"] = f"{exc!r}; the page: {page_text}"


def _server_error(response: Any) -> bool:
    """A 5xx other than the platform's own page that reloads until the app is up (503 with Retry-After: what a
    browser gets when a wake takes longer than the gateway holds it)."""
    waiting = response.status == 503 and "retry-after" in response.headers
    return bool(response.status >= 500 and not waiting)


def test_a_zygote_killed_mid_fork_leaves_no_stuck_app(platform: Platform) -> None:
    log_before = _run_log(platform, "alice/probe2")
    zygote = int(log_before.rsplit("forked from the gradio zygote (pid ", 1)[1].split(")", 1)[0])
    old = set(_app_processes(platform, "alice/probe2"))
    httpx.post(f"{platform.url}/api/spaces/alice/probe2/restart", headers=platform.auth, timeout=30)
    wait_until(lambda: _run_log(platform, "alice/probe2").count("forked from") > log_before.count("forked from"),
               120, "the restart's fork")
    os.kill(zygote, signal.SIGKILL)  # the fork is starting the app: Gradio is not serving yet
    wait_until(lambda: "killed with its zygote" in _run_log(platform, "alice/probe2"), 120, "the app's end reported")
    # started again: from a fresh zygote, or exec'd where the launch found the dead one ("zygote: ... died")
    wait_until(lambda: " starting " in _run_log(platform, "alice/probe2").rsplit("killed with its zygote", 1)[1],
               180, "a launch after the zygote died")
    platform.wait_for("alice/probe2", timeout=180)
    assert _facts(platform, "alice/probe2")["pid"] == 2
    left = set(_app_processes(platform, "alice/probe2"))
    assert not (left & old), "a process of the instance the zygote was starting is still there"
    assert not Path(f"/proc/{zygote}").exists()
