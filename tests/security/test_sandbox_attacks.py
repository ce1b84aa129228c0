"""Attacks from inside an app, on the process backend's sandbox and on the docker backend's containers (the same
suite for both): a real `spaces serve`, apps written here.

An attacker app deployed beside a victim tries, from its own code, everything a hostile Space author would:
the platform's store and secrets, the victim's code, processes and files, its own shared environment, the
platform's control API, memory and pids past its limits. Each attempt must fail, and the victim must keep
serving with its code and /data intact. The victim is the most common shape of real Space code:
``demo.launch(server_name="0.0.0.0", server_port=7860)``.

What differs between the backends is only where things are: on docker every app runs as uid 1000 (as on HF, the
isolation is the container's), the attacker's bridge gateway is the platform network's, and a restarted platform
adopts the running containers instead of starting them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
from docker.models.containers import Container
from gradio_client import Client
from polling import wait_until
from prerequisites import missing

from spaces_harness import Platform, gradio_readme, write_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
MEMORY_MB = 400
PIDS = 64
DATA_QUOTA_MB = 48
SECRET = "runner-secret-the-apps-must-never-see"
PLATFORM_ONLY = "in-the-platforms-environment-only"  # an env var of `spaces serve` that no app may see

VICTIM = '''
import os, pathlib
import gradio as gr
boots = pathlib.Path("/data/boots.txt")
with boots.open("a") as f:
    f.write("boot\\n")
pathlib.Path("/data/victim.txt").write_text("the victim's own data")

def state(_: str) -> str:
    return f"{os.getuid()} {pathlib.Path('/data/victim.txt').read_text()} boots={len(boots.read_text().split())}"

demo = gr.Interface(state, "text", "text", api_name="state")
demo.launch(server_name="0.0.0.0", server_port=7860)
'''

ATTACKER = '''
import ctypes, json, os, signal, socket, subprocess, sys, time
import gradio as gr

libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": {"keyctl": 250, "bpf": 321}, "aarch64": {"keyctl": 219, "bpf": 280}}[os.uname().machine]
CLONE_NEWUSER = 0x10000000

def attempt(action):
    try:
        return "SUCCEEDED: " + str(action())[:200]
    except Exception as exc:
        return f"blocked: {type(exc).__name__}: {exc}"[:300]

def read(path):
    with open(path, "rb") as f:
        return f.read(200)

def write(path, text):
    with open(path, "a") as f:
        f.write(text)
    return path

def native(function, *args):
    """A libc call, its -1 and errno raised as Python would."""
    ctypes.set_errno(0)
    if function(*[ctypes.c_long(a) for a in args]) < 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    return "returned"

def run(argv):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-200:]}")
    return done.stdout

def connect(host, port):
    with socket.create_connection((host, port), timeout=3) as s:
        return f"connected to {host}:{port}"

def forks(limit):
    born = 0
    for _ in range(limit):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        born += 1
    return born

def fill(path, mb):
    try:
        with open(path, "wb") as f:
            for _ in range(mb):
                f.write(bytes(1024 * 1024))
                f.flush()
                os.fsync(f.fileno())
        return f"wrote {mb} MB"
    finally:
        os.remove(path)  # whatever happened, the disk is left as it was

def attack(targets_json):
    t = json.loads(targets_json)
    site = [p for p in sys.path if p.endswith("site-packages")][0]
    found = {
        "store": attempt(lambda: read(t["db"])),
        "runner_secret": attempt(lambda: read(t["secret"])),
        "victim_code": attempt(lambda: read(t["victim_code"])),
        "victim_environ": attempt(lambda: read(f"/proc/{t['victim_pid']}/environ")),
        "pid1_environ": attempt(lambda: read("/proc/1/environ")),
        "kill_victim": attempt(lambda: os.kill(t["victim_pid"], signal.SIGKILL)),
        "write_victim_code": attempt(lambda: write(t["victim_code"], "\\nraise SystemExit('owned')\\n")),
        "pth_in_own_env": attempt(lambda: write(os.path.join(site, "evil.pth"), "import os\\n")),
        "control_api_loopback": attempt(lambda: connect("127.0.0.1", t["port"])),
        "control_api_bridge": attempt(lambda: connect(t["gateway"], t["port"])),
        "victim_directly": attempt(lambda: connect(t["victim_address"], 7860)),
        "lan_service": attempt(lambda: connect(t["lan"], 80)),
        "cloud_metadata": attempt(lambda: connect("169.254.169.254", 80)),
        "processes_seen": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "uid": os.getuid(),
        "own_code_writable": attempt(lambda: write("/home/user/app/notes.txt", "mine")),
        # kernel surface: a user namespace (root inside it), mounts in one, the keyrings, eBPF (before the fork bomb
        # takes every pid)
        "user_namespace": attempt(lambda: native(libc.unshare, CLONE_NEWUSER)),
        "unshare_cli": attempt(lambda: run(["unshare", "-U", "true"])),
        "mount_in_user_namespace": attempt(lambda: run(["unshare", "-Urm", "mount", "-t", "tmpfs", "none", "/tmp"])),
        "keyctl": attempt(lambda: native(libc.syscall, NR["keyctl"], 0, -3, 0)),  # the session keyring's id
        "bpf": attempt(lambda: native(libc.syscall, NR["bpf"], 0, 0, 0)),  # BPF_MAP_CREATE
        "forks": forks(t["forks"]),
        "fill_data": attempt(lambda: fill("/data/fill.bin", t["fill_mb"])),
    }
    return json.dumps(found)

demo = gr.Interface(attack, "text", "text", api_name="attack")
demo.launch()
'''

HOG = '''
import gradio as gr
hoard = []
while True:
    hoard.append(bytearray(64 * 1024 * 1024))
'''


def _deploy(platform: Platform, folder: Path, space_id: str) -> None:
    platform.cli("deploy", str(folder), "--name", space_id, check=True)


LAN = ("10.215.77.1", "10.215.77.2")  # a test "LAN": the host's end, and a web server's in a namespace of its own


@pytest.fixture(scope="module")
def lan_service() -> Iterator[str]:
    """A web server on a private address the host routes to, like a LAN service or another host's API: apps
    must not reach it (the host itself does, which shows it is really there)."""
    name, host_end = f"sr-lan-{os.getpid()}", f"srl{os.getpid() % 100000}"
    steps = [["ip", "netns", "add", name], ["ip", "link", "add", host_end, "type", "veth", "peer", "name", "lan0",
                                            "netns", name],
             ["ip", "addr", "add", f"{LAN[0]}/30", "dev", host_end], ["ip", "link", "set", host_end, "up"],
             ["ip", "-n", name, "addr", "add", f"{LAN[1]}/30", "dev", "lan0"],
             ["ip", "-n", name, "link", "set", "lan0", "up"], ["ip", "-n", name, "link", "set", "lo", "up"]]
    server = None
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        server = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "http.server", "80",
                                   "--bind", LAN[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _answers(LAN[1]), 30, "the LAN service to answer the host")
        yield LAN[1]
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module", params=["process", "docker"])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    backend = request.param
    if backend == "docker":
        _engine()
    data = tmp_path_factory.mktemp(f"sandbox-{backend}") / "data"
    data.mkdir()
    (data / "runner.secret").write_text(SECRET)
    server = Platform(data, extra_args=["--backend", backend],
                      env={"SPACES_RUNNER_ENABLED": "false", "TEST_PLATFORM_ONLY": PLATFORM_ONLY,
                           "SPACES_SANDBOX_MEMORY_MB": str(MEMORY_MB), "SPACES_SANDBOX_PIDS": str(PIDS),
                           "SPACES_SANDBOX_DATA_QUOTA_MB": str(DATA_QUOTA_MB)})
    server.start()
    try:
        root = data.parent
        _deploy(server, write_app(root / "victim", {"README.md": gradio_readme("Victim"), "app.py": VICTIM}),
                "alice/victim")
        _deploy(server, write_app(root / "attacker", {"README.md": gradio_readme("Attacker"), "app.py": ATTACKER}),
                "mallory/attacker")
        yield server
    finally:
        server.stop()


def _engine() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        missing(f"Docker Engine unreachable: {exc}; run scripts/install-docker.sh")


def _on_docker(platform: Platform) -> bool:
    return "docker" in platform.extra_args


def _container(platform: Platform, space_id: str) -> Container:
    found = _engine().containers.list(filters={"label": f"spaces-runtime.space={space_id}"})
    assert len(found) == 1, f"{space_id}: {len(found)} running containers"
    return found[0]


def _victim_state(platform: Platform) -> str:
    return str(Client(f"{platform.url}/spaces/alice/victim/", verbose=False).predict("x", api_name="/state"))


def _victim_pid(uid: int) -> int:
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nUid:\t{uid}\t" in text and "python" in text.split("\n", 1)[0]:
            return int(status.parent.name)
    raise AssertionError(f"no process of uid {uid}")


def _where(platform: Platform, victim_uid: int) -> dict[str, str | int]:
    """The victim's host pid and address, and the attacker's way out to the host (its bridge's gateway)."""
    if not _on_docker(platform):
        return {"victim_pid": _victim_pid(victim_uid), "victim_address": _upstream(platform, "alice/victim"),
                "gateway": "10.213.0.1"}
    victim = _container(platform, "alice/victim")
    network = next(iter(victim.attrs["NetworkSettings"]["Networks"].values()))
    return {"victim_pid": victim.attrs["State"]["Pid"], "victim_address": network["IPAddress"],
            "gateway": network["Gateway"]}


def test_an_attacker_app_reaches_nothing_of_the_platform_or_its_neighbour(platform: Platform,
                                                                         lan_service: str) -> None:
    victim = platform.space("alice/victim")
    victim_code = Path(victim["code_dir"] if "code_dir" in victim else _code_dir(platform, "alice/victim"))
    before = hashlib.sha256((victim_code / "app.py").read_bytes()).hexdigest()
    victim_uid = int(_victim_state(platform).split()[0])
    targets = {"db": str(platform.data_dir / "spaces.db"), "secret": str(platform.data_dir / "runner.secret"),
               "victim_code": str(victim_code / "app.py"), "port": platform.port, "forks": PIDS * 4,
               "lan": lan_service, "fill_mb": DATA_QUOTA_MB * 2,
               **_where(platform, victim_uid)}
    client = Client(f"{platform.url}/spaces/mallory/attacker/", verbose=False)
    found = json.loads(client.predict(json.dumps(targets), api_name="/attack"))

    for attack in ("store", "runner_secret", "victim_code", "victim_environ", "kill_victim",
                   "write_victim_code", "pth_in_own_env", "control_api_loopback", "control_api_bridge",
                   "victim_directly", "lan_service", "cloud_metadata"):
        assert found[attack].startswith("blocked"), f"{attack}: {found[attack]}"
    if _on_docker(platform):  # PID 1 is the container's own init (tini), whose environment is the app's own
        assert "GRADIO_ROOT_PATH=/spaces/mallory/attacker" in found["pid1_environ"], found["pid1_environ"]
    else:
        assert found["pid1_environ"].startswith("blocked"), found["pid1_environ"]
    assert PLATFORM_ONLY not in json.dumps(found)
    for attack in ("user_namespace", "keyctl", "bpf"):  # the seccomp filter's (the engine's default profile's)
        assert found[attack].startswith("blocked: PermissionError: [Errno 1]"), f"{attack}: {found[attack]}"
    for attack in ("unshare_cli", "mount_in_user_namespace"):
        assert "unshare failed: Operation not permitted" in found[attack], f"{attack}: {found[attack]}"
    if _on_docker(platform):  # every app is uid 1000 as on HF; the container is the isolation
        assert found["uid"] == victim_uid == 1000
        assert b"the victim's own data" in _container(platform, "alice/victim").exec_run(
            "cat /data/victim.txt").output
    else:
        assert found["uid"] not in (0, os.getuid(), victim_uid)
    # /data is a disk of its own on both backends: the app hits its quota, not the host's disk
    assert "No space left on device" in found["fill_data"], found["fill_data"]
    assert targets["victim_pid"] not in found["processes_seen"]
    assert len(found["processes_seen"]) <= 4 + found["forks"]  # bwrap's init, the app and its own children
    assert found["own_code_writable"].startswith("SUCCEEDED")  # its own folder is its own, as on HF
    assert found["forks"] < PIDS  # the fork bomb hit its pids limit
    # the victim still serves, its code and data as they were
    assert "the victim's own data" in _victim_state(platform)
    assert hashlib.sha256((victim_code / "app.py").read_bytes()).hexdigest() == before
    assert platform.space("alice/victim")["stage"] == "RUNNING"


def test_an_app_past_its_memory_limit_is_killed_and_says_so(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "hog", {"README.md": gradio_readme("Hog"), "app.py": HOG})
    result = platform.cli("deploy", str(folder), "--name", "mallory/hog")
    assert result.returncode != 0
    space = platform.wait_for("mallory/hog", ("RUNTIME_ERROR",), timeout=300)
    assert f"out of memory (limit {MEMORY_MB}m)" in (space.get("error") or "") + json.dumps(space)
    assert "the victim's own data" in _victim_state(platform)


def test_data_survives_a_redeploy_and_a_platform_restart(platform: Platform) -> None:
    boots = int(_victim_state(platform).rsplit("boots=", 1)[1])
    changed = VICTIM.replace("the victim's own data", "the victim's own data, v2")
    _deploy(platform, write_app(platform.data_dir.parent / "victim", {"app.py": changed}), "alice/victim")
    assert _victim_state(platform).endswith(f"boots={boots + 1}")
    platform.stop()
    platform.start()
    platform.wait_for("alice/victim", timeout=300)
    # a process dies with the platform and boots again; a container may outlive it and be adopted, or be started
    # again: either way the boots written to /data before are all still there (a lost /data would count 1)
    again = int(_victim_state(platform).rsplit("boots=", 1)[1])
    assert again == boots + 2 or (_on_docker(platform) and again == boots + 1), (boots, again)


def _code_dir(platform: Platform, space_id: str) -> str:
    import sqlite3

    with sqlite3.connect(platform.data_dir / "spaces.db") as db:
        return str(db.execute("SELECT code_dir FROM spaces WHERE id = ?", (space_id,)).fetchone()[0])


def _upstream(platform: Platform, space_id: str) -> str:
    """The victim's sandbox address, from its run log's launch line."""
    log = httpx.get(f"{platform.url}/api/spaces/{space_id}/logs/run?follow=0", timeout=10,
                    headers=platform.auth).text
    line = next(line for line in reversed(log.splitlines()) if "in the sandbox as uid" in line)
    return line.split(" at ", 1)[1].split(":", 1)[0]


def _wait_running(platform: Platform, space_id: str) -> None:
    wait_until(lambda: platform.space(space_id)["stage"] == "RUNNING", 300, f"{space_id} RUNNING")
