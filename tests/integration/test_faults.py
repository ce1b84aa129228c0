"""Faults, tried as an unlucky user meets them, against a real `spaces serve`: the platform killed mid-build, stale
folders left on disk, concurrent deploys of one name, an app folder without a README or a title."""

from __future__ import annotations

import http.server
import io
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from polling import wait_until

from spaces_harness import Platform, gradio_readme, write_app

PACKAGE = "spaces-runtime-test-slowpkg"
WHEEL = "spaces_runtime_test_slowpkg-1.0-py3-none-any.whl"
APP = "import gradio as gr\nimport slowpkg\ngr.Interface(lambda s: s, 'text', 'text').launch()\n"


def make_wheel() -> bytes:
    buffer = io.BytesIO()
    info = "spaces_runtime_test_slowpkg-1.0.dist-info"
    with zipfile.ZipFile(buffer, "w") as whl:
        whl.writestr("slowpkg.py", "VALUE = 1\n")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return buffer.getvalue()


class SlowIndex:
    """A package index (PEP 503) on loopback that holds the download of its one wheel until ``release()``: a
    build that is in progress for exactly as long as the test needs, as a slow mirror would make it."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self._released = threading.Event()
        wheel, asked, released = make_wheel(), self.asked, self._released

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith(PACKAGE):
                    body = f'<a href="/files/{WHEEL}">{WHEEL}</a>'.encode()
                elif self.path.endswith(WHEEL):
                    asked.set()
                    released.wait(600)
                    body = wheel
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                kind = "application/octet-stream" if self.path.endswith(WHEEL) else "text/html"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:  # uv asks first whether it may read a wheel in ranges: no
                self.send_response(200 if self.path.endswith(WHEEL) else 404)
                self.send_header("Content-Length", str(len(wheel)))
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()


@pytest.fixture
def slow_index() -> Iterator[SlowIndex]:
    index = SlowIndex()
    yield index
    index.close()


def slow_app(folder: Path, index: SlowIndex, title: str = "Slow") -> Path:
    return write_app(folder, {"README.md": gradio_readme(title), "app.py": APP,
                              "requirements.txt": f"--extra-index-url {index.url}\n{PACKAGE}==1.0\n"})


def build_children(data_dir: Path) -> list[str]:
    """Command lines of processes still working for a build in ``data_dir`` (uv, its build backends)."""
    found = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True).stdout.splitlines()
    return [line for line in found if "spaces_runtime.cli" not in line and "pgrep" not in line]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    server = Platform(tmp_path_factory.mktemp("faults") / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    yield server
    server.stop()


def test_a_build_cut_off_by_kill_9_starts_again_and_leaves_no_orphan(platform: Platform, tmp_path: Path,
                                                                    slow_index: SlowIndex) -> None:
    folder = slow_app(tmp_path / "slow", slow_index)
    deploy = cli_process(platform, "deploy", str(folder), "--name", "faults/slow", stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    assert slow_index.asked.wait(240), "the build never asked for the slow package"
    platform.stop(sig=signal.SIGKILL)
    deploy.kill()
    wait_until(lambda: build_children(platform.data_dir) == [], timeout=20,
               what="the build's processes to die with the platform")
    slow_index.release()
    platform.start()
    space = platform.wait_for("faults/slow", timeout=300)
    assert space["stage"] == "RUNNING"
    assert httpx.get(f"{platform.url}/spaces/faults/slow/", follow_redirects=True).status_code == 200
    assert "the interrupted deploy starts again" in " ".join(
        e["reason"] for e in httpx.get(f"{platform.url}/api/spaces/faults/slow/events").json())


def test_start_up_removes_folders_no_space_uses(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "kept", {"README.md": "---\nsdk: static\n---\n", "index.html": "kept"})
    platform.cli("deploy", str(folder), "--name", "faults/kept", check=True)
    apps = platform.data_dir / "apps"
    ghost = apps / "ghost" / "app" / "versions" / "123"
    ghost.mkdir(parents=True)
    (ghost / "app.py").write_text("print('left by a failed upload')")
    stale = apps / "faults" / "kept" / "versions" / "1"
    stale.mkdir()
    platform.stop()
    platform.start()
    platform.wait_for("faults/kept")
    assert not (apps / "ghost").exists() and not stale.exists()
    assert httpx.get(f"{platform.url}/spaces/faults/kept/").text == "kept"


def test_concurrent_deploys_each_report_their_own_fate(platform: Platform, tmp_path: Path,
                                                      slow_index: SlowIndex) -> None:
    """Three uploads of one name while the first still builds: the newest wins, the others say they were
    superseded (non-zero exit), and no half-built version stays."""
    folders = [slow_app(tmp_path / f"v{i}", slow_index, title=f"Version {i}") for i in range(3)]

    def deploy(folder: Path) -> subprocess.CompletedProcess[str]:
        process = cli_process(platform, "deploy", str(folder), "--name", "faults/race", stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        stdout, stderr = process.communicate(timeout=600)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(deploy, folders[0])
        assert slow_index.asked.wait(240), "the first build never asked for the slow package"
        rest = [pool.submit(deploy, folder) for folder in folders[1:]]
        wait_until(lambda: len(deploys_audited(platform, "faults/race")) == 3, timeout=120, what="all three uploads")
        slow_index.release()
        results = [first.result(), *(r.result() for r in rest)]
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1, [r.stderr[-300:] for r in results]
    losers = [r for r in results if r.returncode != 0]
    said = [" ".join(r.stderr.split()) for r in losers]  # the terminal may wrap a line anywhere
    assert all("superseded by a newer upload" in text for text in said), [text[-300:] for text in said]
    space = platform.space("faults/race")
    assert space["stage"] == "RUNNING" and space["version"] == space["latest_version"]
    assert space["title"] in " ".join(winners[0].stdout.split())
    wait_until(lambda: len(versions(platform, "faults/race")) == 1, timeout=20, what="superseded versions to go")


def test_a_folder_without_readme_is_titled_by_its_name_and_says_what_was_detected(platform: Platform,
                                                                                 tmp_path: Path) -> None:
    folder = write_app(tmp_path / "bare", {"app.py": APP.replace("import slowpkg\n", "")})
    platform.cli("deploy", str(folder), "--name", "faults/my-bare-app", check=True)
    space = platform.space("faults/my-bare-app")
    assert space["title"] == "My Bare App"
    log = build_log(platform, "faults/my-bare-app")
    assert "README.md has no front matter; running as gradio, detected from app.py, which imports gradio" in log


def cli_process(platform: Platform, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = platform.cli_env()
    return subprocess.Popen([sys.executable, "-m", "spaces_runtime.cli", *args], env=env, text=True, **kwargs)


def build_log(platform: Platform, space_id: str) -> str:
    response = httpx.get(f"{platform.url}/api/spaces/{space_id}/logs/build", params={"follow": 0})
    return response.text if response.status_code == 200 else ""


def deploys_audited(platform: Platform, space_id: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{platform.url}/api/audit", params={"space": space_id}, headers=platform.auth, timeout=30)
    return [event for event in found.json() if event["action"] == "deploy"] if found.status_code == 200 else []


def versions(platform: Platform, space_id: str) -> list[Path]:
    root = platform.data_dir / "apps" / space_id / "versions"
    return sorted(root.iterdir()) if root.is_dir() else []
