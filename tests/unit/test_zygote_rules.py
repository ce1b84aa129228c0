"""The zygotes' pure rules: which launches fork and from which zygote, the control protocol's events, how an
app's end is reported, PSS as smaps_rollup writes it, a space's own sleep time, the zygote's uid map and what
of a fork's request the zygote may see."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

from spaces_runtime.sandbox import forking, layout, network
from spaces_runtime.supervisor.process import pss_of
from spaces_runtime.zygote import wire
from spaces_runtime.zygote.enter import Box, exit_code
from spaces_runtime.zygote.pool import host_pid
from spaces_runtime.zygote.rules import ZygoteKey, id_map, plan_fork, startup_code

APP_ENV = {"PATH": "/env/bin:/usr/bin", "HOME": "/home/user/app", "GRADIO_SERVER_PORT": "7860",
           "GRADIO_ROOT_PATH": "/spaces/alice/demo", "PYTHONPATH": "/appkit", "SPACE_ID": "alice/demo",
           "SPACES_RUNNER_TOKEN": "secret-of-alice"}
SPACE_ENV = {"SPACE_ID": "alice/demo", "SPACES_RUNNER_TOKEN": "secret-of-alice", "PYTHONPATH": "/appkit"}


def test_two_spaces_of_one_environment_share_a_zygote_that_holds_neither_ones_secrets() -> None:
    alice = plan_fork(SPACE_ENV, "gradio", ["/env/bin/python", "app.py"], APP_ENV)
    bob_env = {**APP_ENV, "GRADIO_ROOT_PATH": "/spaces/bob/x", "SPACE_ID": "bob/x", "SPACES_RUNNER_TOKEN": "bobs"}
    bob = plan_fork({**SPACE_ENV, "SPACE_ID": "bob/x", "SPACES_RUNNER_TOKEN": "bobs"}, "gradio",
                    ["/env/bin/python", "app.py"], bob_env)
    assert isinstance(alice, ZygoteKey) and alice == bob
    shared = dict(alice.env)
    assert "SPACES_RUNNER_TOKEN" not in shared and "SPACE_ID" not in shared and "GRADIO_ROOT_PATH" not in shared
    assert shared["PYTHONPATH"] == "/appkit" and shared["GRADIO_SERVER_PORT"] == "7860"


def test_another_environment_or_sdk_is_another_zygote() -> None:
    gradio = plan_fork(SPACE_ENV, "gradio", ["/env/bin/python", "app.py"], APP_ENV)
    other_env = plan_fork(SPACE_ENV, "gradio", ["/env2/bin/python", "app.py"], APP_ENV)
    streamlit = plan_fork(SPACE_ENV, "streamlit", ["/env/bin/python", "-m", "streamlit", "run"], APP_ENV)
    assert len({gradio, other_env, streamlit}) == 3


def test_variables_the_sdk_may_read_at_import_send_the_launch_to_exec_and_say_which() -> None:
    reason = plan_fork({**SPACE_ENV, "HF_TOKEN": "x", "GRADIO_THEME": "y"}, "gradio", ["/env/bin/python"], APP_ENV)
    assert reason == "the space sets GRADIO_THEME, HF_TOKEN, which the SDK may read at import"
    assert plan_fork(SPACE_ENV, "docker", ["/env/bin/python"], APP_ENV) == "there is no zygote for sdk 'docker'"


def test_events_on_an_apps_channel() -> None:
    assert wire.parse_event(b"forked 4242\n") == ("forked", 4242)
    assert wire.parse_event(b"exit -9\n") == ("exit", -9)
    assert wire.parse_event(b"error fork failed\n") is None
    assert wire.parse_event(b"") is None


def test_a_request_crosses_a_channel_whole() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        request = {"argv": ["python", "app.py"], "env": {"K": "v" * 300_000}}
        sender = os.fork()
        if sender == 0:
            ours.sendall(wire.encode_request(request))
            os._exit(0)
        assert wire.read_request(theirs) == request
        os.waitpid(sender, 0)


def test_an_apps_end_is_reported_as_bwrap_reports_it() -> None:
    for expected, body in ((0, "os._exit(0)"), (3, "os._exit(3)"), (128 + signal.SIGTERM, "os.kill(os.getpid(), 15)")):
        pid = os.fork()
        if pid == 0:
            exec(body)
            os._exit(99)
        assert exit_code(os.waitpid(pid, 0)[1]) == expected


def test_pss_is_read_from_smaps_rollup() -> None:
    text = "55d0c0000000-7ffd00000000 ---p 00000000 00:00 0  [rollup]\nRss:  170000 kB\nPss:  61234 kB\n"
    assert pss_of(text) == 61234 * 1024
    assert pss_of("") == 0
    assert pss_of(Path("/proc/self/smaps_rollup").read_text()) > 0


def test_an_environment_with_code_that_runs_at_start_or_from_outside_the_index_gets_no_zygote(tmp_path: Path) -> None:
    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    python = tmp_path / "env" / "bin" / "python"
    (site / "paths.pth").write_text("/some/folder\n")  # a plain path entry runs nothing
    (site / "gradio-6.31.0.dist-info").mkdir()
    assert startup_code(python) is None
    (site / "evil.pth").write_text("import os; os.system('id')\n")
    assert startup_code(python) == "evil.pth in the environment runs code at every start"
    (site / "evil.pth").unlink()
    (site / "sitecustomize.py").write_text("print('hi')\n")
    assert startup_code(python) == "sitecustomize.py in the environment runs code at every start"
    (site / "sitecustomize.py").unlink()
    (site / "orjson-9.9.dist-info").mkdir()
    (site / "orjson-9.9.dist-info" / "direct_url.json").write_text("{}")
    assert startup_code(python) == "orjson came from a URL or a path, not the package index"


def test_a_zygotes_user_namespace_maps_its_root_to_its_own_uid_and_the_apps_to_themselves() -> None:
    assert id_map(200_000_005, 200_000_000, 100) == (
        "0 200000005 1\n200000000 200000000 5\n200000006 200000006 94\n")
    assert id_map(200_000_000, 200_000_000, 100) == "0 200000000 1\n200000001 200000001 99\n"
    assert id_map(5, 200_000_000, 100) == "0 5 1\n200000000 200000000 100\n"  # its own uid outside the range
    for line in id_map(200_000_005, 200_000_000, 100).splitlines():
        assert line.split()[1] != "0", "host root is never mapped into a zygote"


def test_a_forks_request_hands_over_only_its_own_folders_and_the_zygote_sees_only_the_shared_ones() -> None:
    plan = layout.SandboxPlan(
        mounts=(layout.Mount("/usr", "/usr"), layout.Mount("/data/apps/alice", "/home/user/app", writable=True),
                layout.Mount("/data/sandbox/data/alice", "/data", writable=True), layout.Mount("/envs/e", "/envs/e"),
                layout.Mount("/data/runner", "/data/runner")),
        symlinks=(("usr/lib", "/lib"),), masks=(), uid=200_000_007, gid=200_000_007, cwd="/home/user/app",
        env={"SPACES_RUNNER_URL": "unix:///data/runner/runner.sock", "SPACES_RUNNER_TOKEN": "alices"},
        argv=("/envs/e/bin/python", "app.py"), seccomp="/run/seccomp.bpf")
    request = forking.request(plan, 200_000_001, 200_000_000, 1000, seccomp=b"\x06\0\0\0\0\0\xff\x7f")
    assert request["detached"] == ["/data/apps/alice", "/data/sandbox/data/alice", "/data/runner"]
    zygote = request["zygote"]
    assert isinstance(zygote, dict)
    assert [m[0] for m in zygote["view"]["mounts"]] == ["/usr", "/envs/e"]  # nothing of the data dir
    assert json.dumps(zygote).count("alices") == 0  # the zygote's part holds no secret of the app's
    box = request["sandbox"]
    assert isinstance(box, dict)
    assert box["mounts"] == [["/usr", "/usr", False], ["fd:0", "/home/user/app", True], ["fd:1", "/data", True],
                             ["/envs/e", "/envs/e", False], ["fd:2", "/data/runner", False]]
    assert Box.of(box).seccomp == b"\x06\0\0\0\0\0\xff\x7f"  # the filter bwrap would load, for the fork to load


def test_the_platform_attaches_only_a_child_of_the_zygote(tmp_path: Path) -> None:
    def process(pid: int, ppid: int, nspid: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "status").write_text(f"Name:\tpython\nPPid:\t{ppid}\nNSpid:\t{nspid}\n")
    process(500, 400, "500\t1")  # the zygote proper
    process(600, 1, "600\t7")  # pid 7 of some other namespace
    process(700, 500, "700\t7")  # the zygote's fork
    assert host_pid(500, 7, tmp_path) == 700
    assert host_pid(500, 8, tmp_path) is None
    assert wire.parse_event(b"ready 0\n") == ("ready", 0) and wire.parse_event(b"inner 500\n") == ("inner", 500)


def test_an_instances_mac_is_the_platforms_own_choice() -> None:
    """Fixed on the host's side (static bridge entry, permanent neighbour): a zygote, root over its forks'
    network namespaces, cannot take another instance's traffic by changing its fork's addresses."""
    assert network.app_mac("0a1b2c3d") == "02:5b:0a:1b:2c:3d"
    assert int(network.app_mac("ffffffff")[:2], 16) & 0b11 == 0b10  # locally administered, unicast
