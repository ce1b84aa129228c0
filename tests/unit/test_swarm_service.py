"""The swarm backend's pure parts: the service spec, which tasks the gateway may use, which task a visitor
gets, what `spaces nodes` shows, the registry's config, and how secrets reach a task."""

from __future__ import annotations

import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from spaces_runtime.gateway.affinity import COOKIE, key, pick, without_first
from spaces_runtime.gateway.routes import resolve
from spaces_runtime.gateway.targets import Upstream
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.tiers import TIERS, limits_for
from spaces_runtime.swarm.nodes import gpus_of, node_view
from spaces_runtime.swarm.registry import registry_config
from spaces_runtime.swarm.secrets import export_script, secret_name, wrapped_command
from spaces_runtime.swarm.service import generation_of, http_check, service_config, service_name, task_url

GIB = 1024 ** 3


def spec(sdk: str = "gradio") -> LaunchSpec:
    return LaunchSpec(space_id="alice/My_App", sdk=sdk, app_dir=Path("/nowhere"), app_file="app.py",
                      base_path="/spaces/alice/My_App", image="spaces-runtime/app:x", env={"A": "1"})


def config(sdk: str = "gradio") -> dict[str, object]:
    limits = limits_for("cpu-basic", TIERS, 2, 8 * GIB, 0)
    return service_config(spec(sdk), limits, image="10.0.0.2:5000/spaces-runtime/app@sha256:ab", platform="p1",
                          generation=7, replicas=2, volume="vol", constraints=[])


def test_a_service_is_hardened_and_rolls_out_start_first() -> None:
    made = config()
    assert made["name"] == "spaces-alice--my-app" == service_name("alice/My_App")
    assert made["user"] == "1000:1000" and made["cap_drop"] == ["ALL"] and made["read_only"] is True
    assert made["init"] is True and "A=1" in made["env"]  # type: ignore[operator]
    assert made["update_config"]["Order"] == "start-first"  # type: ignore[index]
    assert made["mode"]["replicated"]["Replicas"] == 2  # type: ignore[index]
    endpoint = made["endpoint_spec"]
    assert endpoint["Mode"] == "dnsrr" and endpoint["Ports"][0]["PublishMode"] == "host"  # type: ignore[index]
    limits = made["resources"]["Limits"]  # type: ignore[index]
    assert limits["MemoryBytes"] == 4 * GIB and limits["NanoCPUs"] == 2 * 10 ** 9 and limits["Pids"] == 1024
    test = made["healthcheck"]["Test"]  # type: ignore[index]
    assert test[:2] == ["CMD", "python3"] and test[-3:] == ["7860", "/spaces/alice/My_App/config", "200"]
    assert made["labels"]["spaces-runtime.generation"] == "7"  # type: ignore[index]


@contextmanager
def answering(status: int) -> Iterator[int]:
    """A real HTTP server on loopback answering every GET with ``status``; yields its port."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def answering_in_pieces(*pieces: bytes) -> Iterator[int]:
    """A raw server that answers each connection with ``pieces``, one write each (a status line may come split,
    and with no reason phrase); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                for piece in pieces:
                    conn.sendall(piece)
                    time.sleep(0.05)  # not synchronisation: it keeps the pieces apart on the wire

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _healthy(port: int, healthy_status: str) -> bool:
    command = http_check(sys.executable, port, "/config", healthy_status)[1:]  # what the engine runs after CMD
    return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


def test_the_health_check_passes_only_on_the_status_it_names() -> None:
    """The check the engine runs in each task: an app is healthy on 200 only; the runner on any answer (its 401
    to a caller without a token means it is up); nobody listening is unhealthy for both."""
    with answering(200) as port:
        assert _healthy(port, "200") and _healthy(port, "")
    with answering(503) as port:
        assert not _healthy(port, "200") and _healthy(port, "")
    with answering(401) as port:
        assert not _healthy(port, "200") and _healthy(port, "")
    assert not _healthy(port, "") and not _healthy(port, "200")  # that server is gone now
    with answering_in_pieces(b"HTTP/1.1 20", b"0\r\ncontent-length: 0\r\n\r\n") as port:
        assert _healthy(port, "200")
    with answering_in_pieces(b"HTTP/1.1 2", b"04\r\n\r\n") as port:
        assert not _healthy(port, "200")


def test_a_docker_sdk_app_has_no_health_check_in_its_image() -> None:
    assert "healthcheck" not in config("docker")


def test_only_running_tasks_on_ready_nodes_are_used() -> None:
    task = {"DesiredState": "running", "NodeID": "n1",
            "Status": {"State": "running", "PortStatus": {"Ports": [{"PublishedPort": 30001}]}},
            "Spec": {"ContainerSpec": {"Labels": {"spaces-runtime.generation": "5"}}}}
    assert task_url(task, {"n1": "10.0.0.3"}) == "http://10.0.0.3:30001"
    assert task_url(task, {}) is None  # its node is down
    assert task_url({**task, "DesiredState": "shutdown"}, {"n1": "10.0.0.3"}) is None  # being drained
    assert task_url({**task, "Status": {"State": "starting"}}, {"n1": "10.0.0.3"}) is None  # not healthy yet
    assert generation_of(task) == 5


def test_a_visitor_gets_a_cookie_and_stays_on_its_task() -> None:
    route = resolve("localhost:7000", "/spaces/alice/app/", "localhost:7000")
    assert route is not None
    upstream = Upstream(url="http://a", replicas=("http://a", "http://b"))
    first, cookie = pick(upstream, {"headers": []}, route)
    assert cookie is not None and cookie[1].startswith(f"{COOKIE}={key(first.url)}".encode())
    assert b"Path=/spaces/alice/app" in cookie[1]
    again, none = pick(upstream, {"headers": [(b"cookie", f"x=1; {COOKIE}={key('http://b')}".encode())]}, route)
    assert again.url == "http://b" and none is None and again.replicas == ("http://b", "http://a")
    rest = without_first(again)
    assert rest is not None and rest.url == "http://a" and without_first(rest) is None
    single, no_cookie = pick(Upstream(url="http://old", replicas=("http://new",)), {"headers": []}, route)
    assert single.url == "http://new" and no_cookie is None


def test_nodes_show_their_gpus_and_apps() -> None:
    node = {"ID": "n1", "Spec": {"Role": "worker", "Availability": "active"},
            "Status": {"State": "ready", "Addr": "10.0.0.3"},
            "Description": {"Hostname": "gpu-1", "Resources": {
                "NanoCPUs": 8 * 10 ** 9, "MemoryBytes": 32 * GIB,
                "GenericResources": [{"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-1"}},
                                     {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": "GPU-2"}}]}}}
    view = node_view(node, ["b/x", "a/y"])
    assert (view.name, view.role, view.cpus, view.gpus, view.apps) == ("gpu-1", "worker", 8.0, 2, ["a/y", "b/x"])
    assert gpus_of({"Description": {"Resources": {}}}) == 0


def test_the_registry_keeps_its_images_in_the_data_dir(tmp_path: Path) -> None:
    made = yaml.safe_load(registry_config(tmp_path / "storage", "10.0.0.2:5000"))
    assert made["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "storage")
    assert made["http"]["addr"] == "10.0.0.2:5000"


def test_secrets_stay_out_of_the_service_s_environment() -> None:
    spec = LaunchSpec(space_id="alice/app", sdk="gradio", app_dir=Path("/x"), app_file="app.py",
                      base_path="/spaces/alice/app", env={"API_KEY": "s3cret", "MODE": "fast"},
                      secret_keys=frozenset({"API_KEY"}))
    config = service_config(spec, limits_for("cpu-basic", TIERS, 2, 8 * 1024**3, 0), image="r/i@sha256:1",
                            platform="p", generation=1, replicas=1, volume="v", constraints=[],
                            command=wrapped_command(["tini"], ["python", "app.py"]))
    assert "MODE=fast" in config["env"] and not any("s3cret" in item for item in config["env"])
    assert config["command"][:2] == ["/bin/sh", "-c"] and config["command"][-3:] == ["tini", "python", "app.py"]


def test_a_changed_secret_is_a_new_docker_secret_of_a_valid_name() -> None:
    first = secret_name("0123456789abcdef", "Alice/My_App", "API_KEY", "one")
    assert first != secret_name("0123456789abcdef", "Alice/My_App", "API_KEY", "two")
    assert first == secret_name("0123456789abcdef", "Alice/My_App", "API_KEY", "one")
    long = secret_name("0123456789abcdef", "a" * 40 + "/" + "b" * 60, "K" * 50, "v")
    assert len(long) <= 64 and re.fullmatch(r"[a-z0-9-]+", long), long


def test_the_export_loop_gives_the_app_each_file_as_a_variable(tmp_path: Path) -> None:
    """Run by a real /bin/sh: names as the files are named, values byte for byte (a trailing newline too)."""
    (tmp_path / "API_KEY").write_text("s3cret\n")
    (tmp_path / "TOKEN").write_text("a b $HOME 'q'")
    shown = subprocess.run(["/bin/sh", "-c", export_script(str(tmp_path)), "sh", sys.executable, "-c",
                            "import os, json; print(json.dumps([os.environ['API_KEY'], os.environ['TOKEN']]))"],
                           capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(shown.stdout) == ["s3cret\n", "a b $HOME 'q'"]
