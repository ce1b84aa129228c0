"""The gateway in front of real apps: a Gradio 6.31 app and a Streamlit 1.67 app started by the Supervisor with
the ProcessBackend, reached through the Gateway served by uvicorn. gradio_client predicts through both link
forms, SSE arrives event by event, large uploads stream through, WebSockets relay both ways, static sites are
served without escaping their folder, and apps that cannot answer get pages that say why."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from app_venv import app_venv
from gradio_client import Client
from supervised_targets import SupervisedTargets, platform_app
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin, Subprotocol

from spaces_runtime.config import Settings
from spaces_runtime.gateway import upstream as upstream_client
from spaces_runtime.gateway.proxy import Gateway
from spaces_runtime.gateway.targets import Pending, StaticSite, Upstream
from spaces_runtime.logs import LogBook
from spaces_runtime.stages import Stage
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor
from spaces_runtime.supervisor.process import ProcessBackend

pytestmark = pytest.mark.slow
T = TypeVar("T")

GRADIO_APP = textwrap.dedent('''
    import asyncio, hashlib
    import gradio as gr
    from fastapi import Request, WebSocket
    from fastapi.responses import JSONResponse, StreamingResponse

    def predict(name):
        return "Hello " + name

    demo = gr.Interface(predict, "text", "text", api_name="predict")
    demo.launch(prevent_thread_lock=True)

    async def ticks():
        for i in range(5):
            yield f"data: tick {i}\\n\\n"
            await asyncio.sleep(0.4)

    async def sse():
        return StreamingResponse(ticks(), media_type="text/event-stream")

    async def upload(request: Request):
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse({"bytes": size, "sha256": digest.hexdigest()})

    async def echo(ws: WebSocket):
        await ws.accept(subprotocol=(ws.scope.get("subprotocols") or [None])[0])
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "bye":
                await ws.close(code=4001, reason="bye to you")
                return
            if message.get("text") is not None:
                await ws.send_text("echo " + message["text"])
            else:
                await ws.send_bytes(message["bytes"][::-1])

    demo.app.add_api_route("/probe/sse", sse)
    demo.app.add_api_route("/probe/upload", upload, methods=["POST"])
    demo.app.add_api_websocket_route("/probe/ws", echo)
    demo.block_thread()
''')
STREAMLIT_APP = 'import streamlit as st\nst.title("Streamlit through the gateway")\n'
BROKEN_APP = 'raise ImportError("cannot import name \'pipeline\' from \'transformers\'")\n'
RERUN_SCRIPT = b"Z\x00"  # Streamlit's BackMsg{rerun_script: {}}: asks the server to run the script
# A tiny app that answers "ok" DELAY seconds after a request's whole body arrived and reports, on stdout, when half
# of a body has arrived and every connection that ends (EOF or reset): how a real app sees a gateway give up on a
# request.
SINK_APP = textwrap.dedent('''
    import re, socket, sys, time
    delay = float(sys.argv[1])
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        data, answered, halfway = b"", False, False
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            data += chunk
            head, _, body = data.partition(b"\\r\\n\\r\\n")
            length = re.search(rb"content-length: *(\\d+)", head, re.I)
            if not halfway and length and 2 * len(body) >= int(length[1]):
                print(f"received {len(body)} of {int(length[1])} bytes", flush=True)
                halfway = True
            if not answered and length and len(body) >= int(length[1]):
                time.sleep(delay)
                conn.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok")
                answered = True
        print(f"closed after {len(data)} bytes", flush=True)
        conn.close()
''')


class Stack:
    """Supervisor + Gateway + uvicorn on their own event loop in a thread; tests talk to it over sockets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(data_dir=root / "data", probe_interval_s=0.2, stop_grace_s=3)
        self.supervisor = Supervisor(ProcessBackend(settings), LogBook(root / "logs"), settings, _ignore)
        site = root / "site"
        (site / "docs").mkdir(parents=True)
        (site / "index.html").write_text("<h1>static home</h1>")
        (site / "docs" / "index.html").write_text("<h1>docs</h1>")
        (root / "secret.txt").write_text("top secret")
        self.targets = SupervisedTargets(self.supervisor, {
            "alice/site": StaticSite(site),
            "alice/building": Pending("BUILDING", "Building demo", "installing requirements"),
        })
        self.gateway = Gateway(platform_app, self.targets, public_host=f"localhost:{self.port}")
        config = uvicorn.Config(self.gateway, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 180) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.serving = asyncio.run_coroutine_threadsafe(self.server.serve(sockets=[self.sock]), self.loop)
        venv = app_venv()
        specs = [self.spec("gradio", GRADIO_APP, venv), self.spec("streamlit", STREAMLIT_APP, venv, "streamlit"),
                 self.spec("broken", BROKEN_APP, venv)]

        async def deploy() -> list[Stage]:
            return list(await asyncio.gather(*(self.supervisor.run_app(s) for s in specs)))

        assert self.run(deploy()) == [Stage.RUNNING, Stage.RUNNING, Stage.RUNTIME_ERROR]

    def spec(self, name: str, source: str, venv: Path, sdk: str = "gradio") -> LaunchSpec:
        app_dir = self.root / name
        app_dir.mkdir()
        (app_dir / "app.py").write_text(source)
        return LaunchSpec(space_id=f"alice/{name}", sdk=sdk, app_dir=app_dir, app_file="app.py",
                          base_path=f"/spaces/alice/{name}", env_dir=venv, startup_timeout_s=120)

    def stop(self) -> None:
        self.server.should_exit = True
        self.serving.result(15)
        self.run(self.supervisor.shutdown())
        self.run(self.gateway.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _ignore(*args: object) -> None:
    return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("gateway"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def localhost_subdomains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve *.localhost to loopback, as browsers do (this machine's resolver does not)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def open_ws(url: str, subprotocol: str, origin: str | None = None) -> ClientConnection:
    return ws_connect(url, subprotocols=[Subprotocol(subprotocol)], origin=Origin(origin) if origin else None)


def test_gradio_client_predicts_through_the_path_link(stack: Stack) -> None:
    client = Client(f"{stack.url}/spaces/alice/gradio/", verbose=False)
    assert client.predict("Ann", api_name="/predict") == "Hello Ann"


def test_gradio_client_predicts_through_the_host_link(stack: Stack, localhost_subdomains: None) -> None:
    client = Client(f"http://alice-gradio.localhost:{stack.port}/", verbose=False)
    assert client.predict("Bo", api_name="/predict") == "Hello Bo"


def test_gradio_page_links_point_back_through_the_gateway(stack: Stack) -> None:
    config = httpx.get(f"{stack.url}/spaces/alice/gradio/config").json()
    assert config["root"] == f"{stack.url}/spaces/alice/gradio"


def test_link_without_trailing_slash_redirects(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/spaces/alice/gradio?x=1")
    assert response.status_code == 307
    assert response.headers["location"] == "/spaces/alice/gradio/?x=1"


def test_other_paths_reach_the_platform(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/").text == "the platform's own app"


def test_sse_arrives_event_by_event(stack: Stack) -> None:
    arrivals: list[float] = []
    with httpx.stream("GET", f"{stack.url}/spaces/alice/gradio/probe/sse", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 5
    # the app spaces its events 0.4 s apart; a buffering proxy would deliver them all at once
    assert arrivals[-1] - arrivals[0] > 1.0


def test_large_upload_streams_through(stack: Stack) -> None:
    payload = os.urandom(40 * 1024 * 1024)
    response = httpx.post(f"{stack.url}/spaces/alice/gradio/probe/upload", content=payload, timeout=120)
    assert response.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_websocket_relays_text_binary_subprotocol_and_close_code(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.port}/spaces/alice/gradio/probe/ws"
    with open_ws(url, "chat.v1") as ws:
        assert ws.subprotocol == "chat.v1"
        ws.send("hi")
        assert ws.recv(10) == "echo hi"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(10) == b"\x02\x01\x00"
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
        assert ws.close_code == 4001 and ws.close_reason == "bye to you"


def test_streamlit_websocket_connects_and_receives(stack: Stack) -> None:
    origin = f"http://localhost:{stack.port}"
    url = f"ws://127.0.0.1:{stack.port}/spaces/alice/streamlit/_stcore/stream"
    with open_ws(url, "streamlit", origin) as ws:
        ws.send(RERUN_SCRIPT)
        message = ws.recv(15)
        assert isinstance(message, bytes) and message


def test_streamlit_upload_passes_xsrf_through_the_gateway(stack: Stack) -> None:
    base = f"{stack.url}/spaces/alice/streamlit"
    with httpx.Client() as http:
        assert http.get(base + "/").status_code == 200
        http.get(base + "/_stcore/health")  # the app sets its XSRF cookie here, as for a browser
        xsrf = http.cookies.get("_streamlit_xsrf")
        assert xsrf, "the XSRF cookie did not reach the browser"
        with open_ws(base.replace("http", "ws") + "/_stcore/stream", "streamlit", stack.url) as ws:
            ws.send(RERUN_SCRIPT)
            first = ws.recv(15)
            assert isinstance(first, bytes)
            sessions = re.findall(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", first)
            statuses = []
            for session in dict.fromkeys(sessions):
                upload = http.put(f"{base}/_stcore/upload_file/{session.decode()}/file-1",
                                  files={"file": ("data.csv", b"a,b\n1,2\n", "text/csv")},
                                  headers={"X-Xsrftoken": xsrf})
                statuses.append(upload.status_code)
    assert 204 in statuses, statuses


def test_streamlit_through_the_host_link(stack: Stack) -> None:
    host = {"Host": f"alice-streamlit.localhost:{stack.port}"}
    assert httpx.get(f"{stack.url}/_stcore/health", headers=host).text == "ok"
    page = httpx.get(f"{stack.url}/", headers=host)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_static_site_serves_index_files_and_never_escapes_its_folder(stack: Stack) -> None:
    assert "static home" in httpx.get(f"{stack.url}/spaces/alice/site/").text
    assert "docs" in httpx.get(f"{stack.url}/spaces/alice/site/docs/").text
    host = {"Host": f"alice-site.localhost:{stack.port}"}
    assert "static home" in httpx.get(f"{stack.url}/", headers=host).text
    for path in ("/spaces/alice/site/..%2F..%2Fsecret.txt", "/spaces/alice/site/%2e%2e/%2e%2e/secret.txt"):
        response = httpx.get(stack.url + path)
        assert response.status_code == 404 and "top secret" not in response.text


def test_apps_that_cannot_answer_get_pages_that_say_why(stack: Stack) -> None:
    building = httpx.get(f"{stack.url}/spaces/alice/building/")
    assert building.status_code == 503 and building.headers["retry-after"] == "2"
    assert 'http-equiv="refresh"' in building.text and "installing requirements" in building.text
    broken = httpx.get(f"{stack.url}/spaces/alice/broken/")
    assert broken.status_code == 502 and "RUNTIME_ERROR" in broken.text
    assert "cannot import name &#x27;pipeline&#x27; from &#x27;transformers&#x27;" in broken.text
    missing = httpx.get(f"{stack.url}/spaces/alice/nothing-here/")
    assert missing.status_code == 404 and "alice/nothing-here" in missing.text


def test_a_visit_wakes_a_sleeping_app(stack: Stack) -> None:
    stack.run(stack.supervisor.stop_app("alice/gradio", Stage.SLEEPING))
    browser = httpx.get(f"{stack.url}/spaces/alice/gradio/", headers={"Accept": "text/html"}, timeout=30)
    # held a few seconds: a wake from the zygote serves the app itself, a slower one the page that reloads
    assert (browser.status_code == 503 and "Waking" in browser.text) or (
        browser.status_code == 200 and "gradio" in browser.text.lower())
    api = httpx.get(f"{stack.url}/spaces/alice/gradio/config", timeout=150)
    assert api.status_code == 200 and api.json()["version"] == "6.31.0"
    assert stack.supervisor.stage("alice/gradio") is Stage.RUNNING



class Sink:
    """SINK_APP in its own process, reachable through the gateway as alice/{name}."""

    def __init__(self, stack: Stack, name: str, delay: float = 0.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SINK_APP, str(delay)], stdout=subprocess.PIPE, text=True)
        port = int(self.read_line(10))
        stack.targets.fixed[f"alice/{name}"] = Upstream(f"http://127.0.0.1:{port}", forward_prefix=False)

    def read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else ""

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def sink_factory(stack: Stack) -> Iterator[Any]:
    sinks: list[Sink] = []

    def make(name: str, delay: float = 0.0) -> Sink:
        sinks.append(Sink(stack, name, delay))
        return sinks[-1]

    yield make
    for sink in sinks:
        sink.close()


def start_upload(stack: Stack, path: str, declared: int, sent: int) -> socket.socket:
    """A raw client that declares a body of ``declared`` bytes and sends the first ``sent`` of them."""
    client = socket.create_connection(("127.0.0.1", stack.port))
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nContent-Length: {declared}\r\n\r\n"
    client.sendall(head.encode() + b"x" * sent)
    return client


def test_an_aborted_upload_ends_the_apps_request(stack: Stack, sink_factory: Any) -> None:
    sink = sink_factory("sink-abort")
    client = start_upload(stack, "/spaces/alice/sink-abort/upload", 2_000_000, 1_000_000)
    assert sink.read_line(10).startswith("received"), "the first half of the upload did not reach the app"
    client.close()
    line = sink.read_line(5)
    assert line.startswith("closed after"), "the app still waits for the rest of an upload whose sender left"
    assert int(line.split()[2]) > 1_000_000


def test_a_stalled_upload_is_given_up_after_the_stall_limit(stack: Stack, sink_factory: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_client, "BODY_STALL_S", 1.0)
    sink = sink_factory("sink-stall")
    client = start_upload(stack, "/spaces/alice/sink-stall/upload", 2_000_000, 1_000)
    with client:
        assert sink.read_line(6).startswith("closed after"), "a silent uploader holds the app's request forever"
        client.settimeout(5)
        assert client.recv(100).startswith(b"HTTP/1.1 502")


def test_a_request_with_both_length_and_chunks_is_refused_at_the_front_door(stack: Stack, sink_factory: Any) -> None:
    """Request smuggling: a body that is empty as chunks but 40-odd bytes by its length hides a second request.
    The gateway answers 400 and closes; nothing of it is relayed as two requests or one."""
    sink_factory("sink-smuggle")
    hidden = b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", stack.port)) as client:
        client.sendall(b"POST /spaces/alice/sink-smuggle/x HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: %d\r\n"
                       b"transfer-encoding: chunked\r\n\r\n%b" % (len(hidden), hidden))
        client.settimeout(10)
        answer = b""
        while chunk := client.recv(65536):  # to the end: the gateway closes after refusing
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1") == 1


def test_a_slow_answer_after_a_complete_upload_is_not_cut_off(stack: Stack, sink_factory: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_client, "BODY_STALL_S", 0.5)  # the limit covers the upload, not the answer
    sink_factory("sink-slow", delay=2.0)
    response = httpx.post(f"{stack.url}/spaces/alice/sink-slow/predict", content=b"x" * 100_000, timeout=30)
    assert response.status_code == 200 and response.text == "ok"


def test_static_site_serves_percent_encoded_names_without_escaping(stack: Stack) -> None:
    site = stack.root / "site"
    (site / "my file.html").write_text("<p>spaced</p>")
    (site / "café.html").write_text("<p>accented</p>")
    (site / "%2e%2e").write_text("a file literally named %2e%2e")
    assert httpx.get(f"{stack.url}/spaces/alice/site/my%20file.html").text == "<p>spaced</p>"
    assert httpx.get(f"{stack.url}/spaces/alice/site/caf%C3%A9.html").text == "<p>accented</p>"
    host = {"Host": f"alice-site.localhost:{stack.port}"}
    assert httpx.get(f"{stack.url}/my%20file.html", headers=host).text == "<p>spaced</p>"
    # decoded once only: %252e%252e names the file "%2e%2e", never the parent folder
    assert httpx.get(f"{stack.url}/spaces/alice/site/%252e%252e").text == "a file literally named %2e%2e"
    # secret.txt lies right beside the site's folder: each of these names it once decoded
    for rest in ("..%2Fsecret.txt", "%2e%2e%2fsecret.txt", "docs%2F..%2F..%2Fsecret.txt",
                 "my%20file.html%2F..%2F..%2Fsecret.txt", "..%5Csecret.txt", "x%00.html"):
        path = "/spaces/alice/site/" + rest
        response = httpx.get(stack.url + path)
        assert response.status_code == 404 and "top secret" not in response.text, path
