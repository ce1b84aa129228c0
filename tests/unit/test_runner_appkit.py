"""What apps get: a client and a `spaces` shim importable without the platform's dependencies; signed ids."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.version import Version

from spaces_runtime.appkit import address
from spaces_runtime.appkit.install import SHIM_VERSION, appkit_env, kit_dir
from spaces_runtime.appkit.wire import FRAME, frame
from spaces_runtime.client import AsyncRunner, Runner, RunnerError
from spaces_runtime.runner.tokens import app_token, verify_token


def test_app_env_imports_the_client_and_the_shim_from_a_small_copy(tmp_path) -> None:
    settings = SimpleNamespace(data_dir=tmp_path, runner_socket_path=tmp_path / "runner" / "runner.sock",
                               runner_device="cpu")
    env = appkit_env(settings, "alice-demo")
    assert env["SPACES_RUNNER_URL"] == f"unix://{tmp_path / 'runner' / 'runner.sock'}" and env["SPACES_ZERO_GPU"] == "0"
    code = ("import spaces, spaces_runtime.client as c, sys;"
            "assert 'pydantic' not in sys.modules and 'starlette' not in sys.modules;"
            "f = spaces.GPU(duration=10)(lambda x: x + 1); assert f(1) == 2;"
            "print(c.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": env["PYTHONPATH"], **env},
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith(str(tmp_path / "appkit"))


def test_tokens_name_their_app_and_cannot_be_forged() -> None:
    token = app_token(b"secret", "alice-demo")
    assert verify_token(b"secret", token) == "alice-demo"
    assert verify_token(b"other", token) is None
    assert verify_token(b"secret", "bob-demo." + token.rpartition(".")[2]) is None


def test_containers_see_the_runner_socket_and_appkit_at_fixed_read_only_paths(tmp_path) -> None:
    from spaces_runtime.supervisor.docker import APPKIT_MOUNT, RUNNER_MOUNT, runner_mounts

    settings = SimpleNamespace(data_dir=tmp_path, runner_socket_path=tmp_path / "runner" / "runner.sock",
                               runner_device="cpu")
    host_env = {**appkit_env(settings, "alice/demo"), "SPACE_ID": "alice/demo"}
    env, volumes = runner_mounts(host_env, kit_dir(settings), image_pythonpath="/home/user/app")
    assert env["SPACES_RUNNER_URL"] == f"unix://{RUNNER_MOUNT}/runner.sock"
    assert env["PYTHONPATH"] == f"{APPKIT_MOUNT}:/home/user/app"  # the image's own path still works
    assert env["SPACES_RUNNER_TOKEN"] == host_env["SPACES_RUNNER_TOKEN"] and env["SPACE_ID"] == "alice/demo"
    assert volumes == {str(tmp_path / "runner"): {"bind": RUNNER_MOUNT, "mode": "ro"},
                       str(tmp_path / "appkit"): {"bind": APPKIT_MOUNT, "mode": "ro"}}
    assert str(tmp_path) not in volumes  # the data dir (secret, database) is never mounted
    assert runner_mounts({"SPACE_ID": "x"}, kit_dir(settings)) == ({"SPACE_ID": "x"}, {})
    assert runner_mounts(host_env, None) == (host_env, {})  # runner disabled: nothing mounted


def test_the_shim_is_an_installed_package_to_importlib_metadata(tmp_path) -> None:
    """Gradio on a Space asks importlib.metadata for `spaces` (>= 0.43.0), then imports spaces.reloading."""
    settings = SimpleNamespace(data_dir=tmp_path, runner_socket_path=tmp_path / "runner" / "runner.sock",
                               runner_device="cpu")
    (tmp_path / "appkit" / "spaces-0.1.dist-info").mkdir(parents=True)  # an older shim's metadata
    env = appkit_env(settings, "alice-demo")
    code = ("import base64, hashlib, importlib.metadata as m, json;"
            "from spaces.reloading import start_reload_server;"
            "files = [f for f in m.files('spaces') if f.hash];"
            "ok = [base64.urlsafe_b64encode(hashlib.sha256(f.read_binary()).digest()).rstrip(b'=').decode()"
            " == f.hash.value and f.size == len(f.read_binary()) for f in files];"
            "print(json.dumps({'version': m.version('spaces'), 'files': sorted(str(f) for f in files), 'ok': ok,"
            " 'found': [str(d._path) for d in m.distributions(name='spaces')]}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    found = json.loads(out.stdout)
    assert found["version"] == SHIM_VERSION
    assert Version(found["version"]) >= Version("0.43.0")  # what Gradio's Spaces reloader asks for
    assert "spaces/__init__.py" in found["files"] and "spaces/reloading.py" in found["files"]
    assert found["ok"] and all(found["ok"])  # RECORD's hashes and sizes are the files' own
    assert found["found"] == [str(tmp_path / "appkit" / f"spaces-{SHIM_VERSION}.dist-info")]  # one version only


class _RunnerStandIn:
    """A runner stand-in on a Unix socket: answers every /v1/models frame with no models, on kept-alive
    connections, until ``restart`` drops every connection and listens again on the same path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections: list[socket.socket] = []
        self.listener = self._listen()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(8)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by restart
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while len(prefix := reader.read(FRAME.size)) == FRAME.size:
                _, hlen, blen = FRAME.unpack(prefix)
                reader.read(hlen + blen)
                conn.sendall(b"".join(frame({"s": 200}, b'{"models": []}')))

    def restart(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.shutdown(socket.SHUT_RDWR)
        self.connections.clear()
        self.path.unlink()
        self.listener = self._listen()


def _runner_comes_up_at_the_first_pause(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[float]:
    """The client's pauses, with the runner starting when the client first waits: a call that did not wait
    would fail (no socket yet), one that waited gets the answer."""
    pauses: list[float] = []
    original = address.connect_pauses

    def late(a: address.Address) -> Iterator[float]:
        for pause in original(a):
            if not pauses:
                _RunnerStandIn(path)
            pauses.append(pause)
            yield pause

    monkeypatch.setattr(address, "connect_pauses", late)
    return pauses


def test_a_call_made_before_the_runner_listens_waits_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that starts before its node's runner (a swarm places the runner on its own schedule) and calls it
    at import gets its answer once the runner is up, not an error."""
    path = tmp_path / "runner.sock"
    pauses = _runner_comes_up_at_the_first_pause(monkeypatch, path)
    assert Runner(f"unix://{path}", token="t").models() == []
    assert pauses, "the call never had to wait"


def test_the_async_client_waits_for_a_late_runner_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runner.sock"
    pauses = _runner_comes_up_at_the_first_pause(monkeypatch, path)
    assert asyncio.run(AsyncRunner(f"unix://{path}", token="t").models()) == []
    assert pauses


def test_the_async_client_survives_a_runner_restart_with_several_idle_streams(tmp_path: Path) -> None:
    """Two calls at once leave two kept-alive streams; the runner restarts; the next call gets its answer
    (both streams are stale, not only the first one tried)."""
    runner = _RunnerStandIn(tmp_path / "runner.sock")

    async def scenario() -> list[dict[str, object]]:
        client = AsyncRunner(f"unix://{runner.path}", token="t")
        await asyncio.gather(client.models(), client.models())
        assert len(client._idle) == 2
        runner.restart()
        try:
            return await client.models()
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == []


def test_a_runner_that_never_comes_fails_the_call_after_the_wait_saying_so(tmp_path: Path) -> None:
    url = f"unix://{tmp_path / 'runner.sock'}"
    with pytest.raises(RunnerError, match=r"no model runner answers at .*runner.sock.*waited 0.3 s"):
        Runner(url, token="t", connect_wait=0.3).models()
    with pytest.raises(RunnerError, match="waited 0.3 s"):
        asyncio.run(AsyncRunner(url, token="t", connect_wait=0.3).models())
    with pytest.raises(RunnerError, match="waited 0.2 s"):  # a call's own timeout bounds the wait too
        Runner(url, token="t", timeout=0.2).models()


def test_an_address_that_cannot_be_a_socket_fails_at_once_without_claiming_a_wait(tmp_path: Path) -> None:
    """Not a runner still starting: a socket path under a file (ENOTDIR) fails at once, and says no wait."""
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunnerError) as caught:
        Runner(f"unix://{tmp_path / 'file' / 'runner.sock'}", token="t").models()
    assert "waited" not in str(caught.value) and "no model runner answers" in str(caught.value)


def test_a_wait_that_is_no_number_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACES_RUNNER_CONNECT_WAIT_S", "soon")
    with pytest.raises(RunnerError, match="SPACES_RUNNER_CONNECT_WAIT_S is 'soon', not a number of seconds"):
        Runner("unix:///nowhere/runner.sock", token="t")
