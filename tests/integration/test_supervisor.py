"""Supervisor + ProcessBackend with real processes: apps start, crash, come back, fail with their traceback,
time out, sleep and wake, get replaced without downtime, and leave no process behind when stopped."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from app_venv import app_venv
from polling import wait_until_async
from supervised_targets import SupervisedTargets, platform_app

from spaces_runtime.config import Settings
from spaces_runtime.gateway.proxy import Gateway
from spaces_runtime.logs import LogBook
from spaces_runtime.sandbox import cgroups
from spaces_runtime.sandbox.processes import ns_pids_of
from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.backend import Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor
from spaces_runtime.supervisor.probes import LivenessPolicy
from spaces_runtime.supervisor.process import ProcessBackend

DEV_VENV = Path(sys.prefix)  # a virtualenv with only the standard library needed: enough for tiny http apps

# A stand-in for a gradio app: answers every GET on GRADIO_SERVER_PORT; APP_CRASH_AFTER makes it exit with code 3;
# APP_LOG_REQUESTS makes it print each request it answers (health checks included) to its run log;
# APP_STALL_PATH makes every request for that path after the first one wait forever (other paths still answer).
TINY_APP = textwrap.dedent("""
    import os, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    VERSION = os.environ.get("APP_VERSION", "v1").encode()
    LOG_REQUESTS = bool(os.environ.get("APP_LOG_REQUESTS"))
    STALL_PATH, answered = os.environ.get("APP_STALL_PATH"), set()
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == STALL_PATH and self.path in answered:
                time.sleep(3600)
            answered.add(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(VERSION)))
            self.end_headers()
            self.wfile.write(VERSION)
        def log_message(self, *args):
            if LOG_REQUESTS:
                print("answered", self.path, flush=True)
    if os.environ.get("APP_SLEEP_FIRST"):
        import time; time.sleep(1000)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["GRADIO_SERVER_PORT"])), Handler)
    if os.environ.get("APP_CRASH_AFTER"):
        threading.Timer(float(os.environ["APP_CRASH_AFTER"]), lambda: os._exit(3)).start()
    print("tiny app serving", VERSION.decode(), flush=True)
    server.serve_forever()
""")


class Stages:
    def __init__(self) -> None:
        self.seen: list[tuple[Stage, str, str | None]] = []

    def __call__(self, space_id: str, stage: Stage, reason: str, error: str | None) -> None:
        self.seen.append((stage, reason, error))

    def names(self) -> list[Stage]:
        return [stage for stage, _, _ in self.seen]


@pytest.fixture
def stages() -> Stages:
    return Stages()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", probe_interval_s=0.1, restart_backoff_initial_s=0.2,
                    restart_backoff_max_s=5, crash_loop_restarts=3, crash_loop_window_s=60, stop_grace_s=2)


@pytest.fixture
async def supervisor(settings: Settings, stages: Stages, tmp_path: Path) -> AsyncIterator[Supervisor]:
    logs = LogBook(tmp_path / "logs")
    sup = Supervisor(ProcessBackend(settings), logs, settings, stages)
    await sup.start()
    yield sup
    await sup.shutdown()


def tiny_spec(tmp_path: Path, source: str = TINY_APP, timeout: float = 30, **env: str) -> LaunchSpec:
    app_dir = tmp_path / f"app-{len(list(tmp_path.glob('app-*')))}"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(source)
    return LaunchSpec(space_id="alice/demo", sdk="gradio", app_dir=app_dir, app_file="app.py",
                      base_path="/spaces/alice/demo", env=env, env_dir=DEV_VENV, startup_timeout_s=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def serving_anew(sup: Supervisor, old: Instance) -> bool:
    """Whether another instance than ``old`` of its app serves now (told apart by the instance, not by its
    address: the sandbox may give a restarted instance the address its predecessor gave back)."""
    current = next((i for i in sup.instances() if i.space_id == old.space_id), None)
    return sup.upstream(old.space_id) is not None and current is not None and current is not old


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def cgroup_members(pid: int) -> list[int]:
    """Host pids of every process in the cgroup of host pid ``pid``: the sandbox gives each app instance its own,
    so these are the app, whatever it started, and the sandbox's own processes around it."""
    where = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    folder = (cgroups.ROOT / "pids" / where["pids"].lstrip("/") if "pids" in where  # v1: the pids hierarchy
              else cgroups.ROOT / where[""].lstrip("/"))
    assert folder.parent.name == cgroups.PARENT, f"pid {pid} is not in an app's own cgroup but in {folder}"
    return [int(member) for member in (folder / "cgroup.procs").read_text().split()]


def host_pid(ns_pid: int, among: list[int], beside: int) -> int:
    """The host pid of the process that is ``ns_pid`` in the PID namespace of host pid ``beside`` (the pids an
    app writes down are its namespace's own)."""
    namespace = os.readlink(f"/proc/{beside}/ns/pid")
    for pid in among:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/ns/pid") == namespace and ns_pids_of(pid)[-1:] == [ns_pid]:
                return pid
    raise AssertionError(f"no process {ns_pid} in the app's PID namespace among {among}")


async def test_app_serves_and_its_output_reaches_the_run_log(supervisor: Supervisor, stages: Stages,
                                                            tmp_path: Path) -> None:
    assert await supervisor.run_app(tiny_spec(tmp_path)) is Stage.RUNNING
    assert stages.names() == [Stage.APP_STARTING, Stage.RUNNING]
    # the runtime's backend_ref is the process that runs app.py, as an operator finds it in ps
    assert command_line(int(supervisor.instances()[0].backend_ref))[-1] == "app.py"
    upstream = supervisor.upstream("alice/demo")
    assert upstream is not None
    async with httpx.AsyncClient() as client:
        assert (await client.get(upstream + "/anything")).text == "v1"
    await wait_until_async(lambda: "tiny app serving v1" in supervisor.logs.read("alice/demo", "run"), 20,
                           "the app's output in the run log")
    assert "=====" in supervisor.logs.read("alice/demo", "run")


async def test_a_new_app_is_running_as_soon_as_it_answers_not_at_the_next_tick(
        settings: Settings, stages: Stages, tmp_path: Path) -> None:
    # a full tick every 30 s: the start must not wait for one (a forked app answers well within a second, and the
    # deploy or the woken visitor waits for RUNNING)
    settings.probe_interval_s = 30
    sup = Supervisor(ProcessBackend(settings), LogBook(tmp_path / "logs"), settings, stages)
    first = tiny_spec(tmp_path)
    # the second space comes while the loop waits for its next full tick, as on a platform that runs for a while
    second = dataclasses.replace(tiny_spec(tmp_path), space_id="alice/second", base_path="/spaces/alice/second")
    started: list[asyncio.Task[Stage]] = []
    try:
        for spec in (first, second):
            started.append(asyncio.create_task(sup.run_app(spec)))
            await wait_until_async(started[-1].done, 20, f"{spec.space_id} to be reported RUNNING once it answers "
                                                         "(the next full tick is 30 s away)")
            assert started[-1].result() is Stage.RUNNING, stages.seen[-1]
        assert stages.names() == [Stage.APP_STARTING, Stage.RUNNING] * 2
    finally:
        for task in started:
            task.cancel()
        await sup.shutdown()


async def test_app_raising_at_import_is_a_runtime_error_showing_the_exception(
        supervisor: Supervisor, stages: Stages, tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, "import json\nraise RuntimeError('weights.bin is missing from the folder')\n")
    assert await supervisor.run_app(spec) is Stage.RUNTIME_ERROR
    stage, reason, error = stages.seen[-1]
    assert stage is Stage.RUNTIME_ERROR
    assert "exited with code 1" in reason
    assert error is not None and "RuntimeError: weights.bin is missing from the folder" in error
    assert "Traceback" in error
    assert supervisor.upstream("alice/demo") is None


async def test_crashing_app_restarts_with_growing_delays_then_gives_up(
        supervisor: Supervisor, stages: Stages, tmp_path: Path) -> None:
    # up 1 s before each crash: long enough for a readiness probe on a loaded 2-core machine (0.3 s was not, once)
    assert await supervisor.run_app(tiny_spec(tmp_path, APP_CRASH_AFTER="1.0")) is Stage.RUNNING
    await wait_until_async(lambda: supervisor.stage("alice/demo") is Stage.RUNTIME_ERROR, 30,
                           "the crash loop to give up")
    restarts = [reason for stage, reason, _ in stages.seen if stage is Stage.APP_STARTING][1:]
    assert [r.split("restarting in ")[1] for r in restarts] == ["0.2 s", "0.4 s", "0.8 s"]
    assert all("exited with code 3" in r for r in restarts)
    assert stages.names().count(Stage.RUNNING) == 4  # the first start and three restarts all served
    _, reason, error = stages.seen[-1]
    assert "giving up" in reason and error is not None
    assert supervisor.logs.read("alice/demo", "run").count("tiny app serving") == 4


async def test_app_killed_with_sigkill_comes_back(supervisor: Supervisor, stages: Stages,
                                                  tmp_path: Path) -> None:
    await supervisor.run_app(tiny_spec(tmp_path))
    first = supervisor.instances()[0]
    os.kill(int(first.backend_ref), signal.SIGKILL)
    await wait_until_async(lambda: serving_anew(supervisor, first), 20,
                           "the killed app to come back")
    assert any("killed by SIGKILL" in reason for _, reason, _ in stages.seen)
    async with httpx.AsyncClient() as client:
        assert (await client.get(str(supervisor.upstream("alice/demo")))).text == "v1"


async def test_startup_timeout_is_a_runtime_error(supervisor: Supervisor, stages: Stages,
                                                  tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, timeout=1.0, APP_SLEEP_FIRST="1")
    assert await supervisor.run_app(spec) is Stage.RUNTIME_ERROR
    assert "did not become ready within 1 s" in stages.seen[-1][1]
    assert supervisor.instances() == []


async def test_redeploy_replaces_the_app_without_downtime(supervisor: Supervisor, stages: Stages,
                                                          tmp_path: Path) -> None:
    await supervisor.run_app(tiny_spec(tmp_path, APP_VERSION="v1"))
    old_pid = int(supervisor.instances()[0].backend_ref)
    answers: list[str] = []
    replaced = asyncio.create_task(supervisor.run_app(tiny_spec(tmp_path, APP_VERSION="v2")))
    async with httpx.AsyncClient() as client:
        while not replaced.done():
            upstream = supervisor.upstream("alice/demo")
            assert upstream is not None, "the link went dark during a redeploy"
            answers.append((await client.get(upstream)).text)
            await asyncio.sleep(0.02)
        assert await replaced is Stage.RUNNING
        assert (await client.get(str(supervisor.upstream("alice/demo")))).text == "v2"
    assert answers[0] == "v1"
    assert stages.names()[-2:] == [Stage.RUNNING_APP_STARTING, Stage.RUNNING]
    assert len(supervisor.instances()) == 1
    new_pid = int(supervisor.instances()[0].backend_ref)
    # the old version retires once requests already sent to it are done
    await wait_until_async(lambda: not alive(old_pid), 20, "the replaced version's process to end")
    assert alive(new_pid)


async def test_idle_app_sleeps_and_wakes(settings: Settings, stages: Stages, tmp_path: Path) -> None:
    settings.sleep_after_s = 0.5
    sup = Supervisor(ProcessBackend(settings), LogBook(tmp_path / "logs"), settings, stages)
    try:
        await sup.run_app(tiny_spec(tmp_path))
        pid = int(sup.instances()[0].backend_ref)
        await wait_until_async(lambda: sup.stage("alice/demo") is Stage.SLEEPING, 20, "the idle app to sleep")
        assert not alive(pid) and sup.upstream("alice/demo") is None
        await sup.wake("alice/demo")
        assert sup.stage("alice/demo") is Stage.RUNNING and sup.upstream("alice/demo") is not None
    finally:
        await sup.shutdown()


GRADIO_WITH_CHILDREN = textwrap.dedent("""
    import subprocess, sys
    import gradio as gr
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
    kids = [subprocess.Popen(["sleep", "1000"]), subprocess.Popen([sys.executable, "-c", stubborn])]
    open("children.txt", "w").write(" ".join(str(k.pid) for k in kids))
    gr.Interface(lambda text: text[::-1], "text", "text").launch()
""")


@pytest.mark.slow
async def test_stopping_a_gradio_app_leaves_no_orphans(supervisor: Supervisor, stages: Stages,
                                                       tmp_path: Path) -> None:
    spec = tiny_spec(tmp_path, GRADIO_WITH_CHILDREN, timeout=120)
    spec = LaunchSpec(**{**spec.__dict__, "env_dir": app_venv()})
    assert await supervisor.run_app(spec) is Stage.RUNNING, stages.seen[-1]
    app = int(supervisor.instances()[0].backend_ref)
    on_host = cgroup_members(app)
    children = [host_pid(int(pid), on_host, app) for pid in (spec.app_dir / "children.txt").read_text().split()]
    assert all(alive(pid) for pid in [app, *children])
    await supervisor.stop_app("alice/demo")
    assert stages.names()[-1] is Stage.PAUSED
    left = [pid for pid in on_host if alive(pid)]  # the app, its children and the sandbox's own processes
    assert not left, [command_line(pid) for pid in left]


FAST_LIVENESS = LivenessPolicy(interval_s=0.3, timeout_s=0.4, failures=3)


@pytest.fixture
async def watchful(settings: Settings, stages: Stages, tmp_path: Path) -> AsyncIterator[Supervisor]:
    """A supervisor that checks running apps for hangs every 0.3 s (the platform's default is every 10 s)."""
    sup = Supervisor(ProcessBackend(settings), LogBook(tmp_path / "logs"), settings, stages, liveness=FAST_LIVENESS)
    await sup.start()
    yield sup
    await sup.shutdown()


async def test_hung_app_is_restarted_and_the_run_log_says_why(watchful: Supervisor, stages: Stages,
                                                              tmp_path: Path) -> None:
    assert await watchful.run_app(tiny_spec(tmp_path)) is Stage.RUNNING
    hung = watchful.instances()[0]
    pid = int(hung.backend_ref)
    os.kill(pid, signal.SIGSTOP)  # the process lives on but answers nothing, like a deadlocked app
    try:
        await wait_until_async(lambda: serving_anew(watchful, hung), 30,
                               "the hung app to be replaced")
        assert not alive(pid), "the hung process was left behind"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    log_text = watchful.logs.read("alice/demo", "run")
    assert "the app stopped answering health checks" in log_text
    assert "health check 3 of 3: no answer" in log_text
    restarted = [reason for stage, reason, _ in stages.seen if stage is Stage.APP_STARTING][1:]
    assert restarted == ["the app stopped answering health checks; restarting in 0.2 s"]
    assert stages.names()[-1] is Stage.RUNNING
    async with httpx.AsyncClient() as client:
        assert (await client.get(str(watchful.upstream("alice/demo")))).text == "v1"


async def test_a_short_stall_is_not_a_hang(watchful: Supervisor, stages: Stages, tmp_path: Path) -> None:
    assert await watchful.run_app(tiny_spec(tmp_path, APP_LOG_REQUESTS="1")) is Stage.RUNNING
    instance = watchful.instances()[0]
    pid = int(instance.backend_ref)

    def run_log() -> str:
        return watchful.logs.read("alice/demo", "run")

    os.kill(pid, signal.SIGSTOP)
    try:  # stalled until one check went unanswered; the next may be under way, the one after would be a hang
        await wait_until_async(lambda: "health check 1 of 3: no answer" in run_log(), 20,
                               "a health check to go unanswered")
    finally:
        os.kill(pid, signal.SIGCONT)
    answered = run_log().count("answered /spaces/alice/demo/config")
    # some of these may be checks that gave up while the app was stopped; four include answered ones
    await wait_until_async(lambda: run_log().count("answered /spaces/alice/demo/config") >= answered + 4, 20,
                           "several health checks answered after the stall")
    assert watchful.instances() == [instance] and alive(pid)
    assert stages.names() == [Stage.APP_STARTING, Stage.RUNNING]


async def test_an_app_busy_serving_visitors_is_not_restarted_for_slow_health_checks(
        watchful: Supervisor, tmp_path: Path) -> None:
    """On a host starved of CPU a busy app's health check times out again and again while it keeps answering its
    visitors; restarting it would drop them all. Once it answers nobody, it is hung and restarted."""
    spec = tiny_spec(tmp_path, APP_STALL_PATH="/spaces/alice/demo/config")  # its health check stalls from now
    assert await watchful.run_app(spec) is Stage.RUNNING
    instance = watchful.instances()[0]
    gateway = Gateway(platform_app, SupervisedTargets(watchful), public_host="localhost")

    def run_log() -> str:
        return watchful.logs.read("alice/demo", "run")

    async def visit_until(done: Callable[[], bool]) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://localhost") as web:
            while not done():
                assert (await web.get("/spaces/alice/demo/page")).text == "v1"
                await asyncio.sleep(0.05)  # pacing of the visitor, not synchronisation

    try:
        # more unanswered checks than the policy's 3 go by while the app serves its visitors through the gateway
        await asyncio.wait_for(visit_until(lambda: run_log().count("busy (or starved of CPU), not hung") >= 5), 30)
        assert watchful.instances() == [instance]
        assert "stopped answering health checks" not in run_log()
        # the visitors leave; the health check still gets no answer: now it is a hang
        await wait_until_async(lambda: serving_anew(watchful, instance), 30, "the app to be restarted as hung")
        assert "health check 3 of 3: no answer" in run_log()
    finally:
        await gateway.aclose()


async def test_a_hung_app_does_not_hold_up_the_others(settings: Settings, stages: Stages, tmp_path: Path) -> None:
    """Checks of a hung app wait 30 s for an answer; meanwhile a crashed app beside it is restarted at once."""
    patient = LivenessPolicy(interval_s=0.2, timeout_s=30, failures=100)
    sup = Supervisor(ProcessBackend(settings), LogBook(tmp_path / "logs"), settings, stages, liveness=patient)
    crashing = tiny_spec(tmp_path, APP_CRASH_AFTER="1.5")
    crashing = LaunchSpec(**{**crashing.__dict__, "space_id": "bob/crashy", "base_path": "/spaces/bob/crashy"})
    hung_pid = 0
    try:
        assert await sup.run_app(tiny_spec(tmp_path)) is Stage.RUNNING
        assert await sup.run_app(crashing) is Stage.RUNNING
        hung_pid = int(next(i for i in sup.instances() if i.space_id == "alice/demo").backend_ref)
        first_crashy = next(i for i in sup.instances() if i.space_id == "bob/crashy")
        os.kill(hung_pid, signal.SIGSTOP)
        await wait_until_async(lambda: serving_anew(sup, first_crashy), 20,
                               "the crashed app to come back")
        # back before the hung app's first check gave up: supervising it did not wait on that check
        assert "health check 1 of 100: no answer" not in sup.logs.read("alice/demo", "run")
        assert sup.stage("alice/demo") is Stage.RUNNING  # its first check still waits: not a hang
    finally:
        if hung_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung_pid, signal.SIGCONT)
        await sup.shutdown()
