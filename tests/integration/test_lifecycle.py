"""Lifecycle commands, static sites, and the token that guards writes beyond loopback — on a light platform."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from spaces_harness import Platform, write_app

STATIC_README = "---\ntitle: Docs\nemoji: 📄\nsdk: static\n---\n"
CLI = [sys.executable, "-m", "spaces_runtime.cli"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    root = tmp_path_factory.mktemp("light")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    yield server
    server.stop()


def test_static_site_is_served_by_the_gateway_and_cannot_escape(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "docs", {"README.md": STATIC_README, "index.html": "<h1>Hello static</h1>",
                                           "style.css": "h1 { color: red }"})
    platform.cli("deploy", str(folder), "--name", "tests/docs", check=True)
    page = httpx.get(f"{platform.url}/spaces/tests/docs/")
    assert page.status_code == 200 and "Hello static" in page.text
    assert httpx.get(f"{platform.url}/spaces/tests/docs/style.css").text.startswith("h1")
    escape = httpx.get(f"{platform.url}/spaces/tests/docs/..%2F..%2Fspaces.db")
    assert escape.status_code == 404


def test_pause_restart_delete(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "site", {"README.md": STATIC_README, "index.html": "<p>site v1</p>"})
    platform.cli("deploy", str(folder), "--name", "tests/site", check=True)
    paused = json.loads(platform.cli("pause", "tests/site", "--json", check=True).stdout)
    assert paused["stage"] == "PAUSED"
    assert "site v1" not in httpx.get(f"{platform.url}/spaces/tests/site/").text
    platform.cli("restart", "tests/site", check=True)
    platform.wait_for("tests/site")
    assert "site v1" in httpx.get(f"{platform.url}/spaces/tests/site/").text
    platform.cli("delete", "tests/site", check=True)
    assert httpx.get(f"{platform.url}/spaces/tests/site/").status_code == 404
    status = platform.cli("status", "tests/site")
    assert status.returncode == 1 and "no space named tests/site" in status.stderr


def test_cli_errors_are_one_line_without_traceback(platform: Platform, tmp_path: Path) -> None:
    unreachable = platform.cli("list", "--server", "http://127.0.0.1:9")
    assert unreachable.returncode == 1
    assert "cannot reach the platform" in unreachable.stderr and "Traceback" not in unreachable.stderr
    bad = platform.cli("status", "no-slash")
    assert bad.returncode == 1 and "OWNER/NAME" in bad.stderr


def test_build_error_names_the_failing_requirement(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "badreq", {
        "README.md": "---\ntitle: Bad req\nsdk: gradio\nsdk_version: 6.31.0\n---\n",
        "app.py": "import gradio as gr\n",
        "requirements.txt": "numpy\nno-such-package-spaces-runtime-xyz==9.9\n",
    })
    result = platform.cli("deploy", str(folder), "--name", "tests/badreq")
    assert result.returncode == 1
    space = platform.space("tests/badreq")
    assert space["stage"] == "BUILD_ERROR"
    assert "requirements.txt line 2" in space["error"]
    assert "no-such-package-spaces-runtime-xyz" in result.stderr


def test_writes_need_the_token_beyond_loopback(tmp_path: Path) -> None:
    server = Platform(tmp_path / "data", extra_args=["--host", "0.0.0.0"],
                      env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        token = (tmp_path / "data" / "token").read_text().strip()
        assert oct((tmp_path / "data" / "token").stat().st_mode & 0o777) == "0o600"
        folder = write_app(tmp_path / "site", {"README.md": STATIC_README, "index.html": "hi"})
        # another user's CLI: no token of its own, and the platform's data dir is not its to read
        stranger = {**server.cli_env(), "SPACES_DATA_DIR": str(tmp_path / "elsewhere"),
                    "SPACES_CONFIG_DIR": str(tmp_path / "config")}
        refused = subprocess.run([*CLI, "deploy", str(folder), "--name", "tests/site"], env=stranger,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "needs a token" in refused.stderr and "spaces login" in refused.stderr
        assert httpx.delete(f"{server.url}/api/spaces/tests/site").status_code == 401
        assert httpx.get(f"{server.url}/api/spaces").status_code == 200  # reading public spaces stays open
        ok = subprocess.run([*CLI, "deploy", str(folder), "--name", "tests/site"], env={**stranger,
                            "SPACES_TOKEN": token}, capture_output=True, text=True, timeout=120)
        assert ok.returncode == 0, ok.stderr
    finally:
        server.stop()


def test_web_pages_cannot_write_without_a_token(platform: Platform, tmp_path: Path) -> None:
    """Apps share the platform's origin: a page of one must not pause, replace or delete another."""
    folder = write_app(tmp_path / "victim", {"README.md": STATIC_README, "index.html": "victim"})
    platform.cli("deploy", str(folder), "--name", "tests/victim", check=True)
    for headers in ({"Origin": platform.url}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": "https://evil.example"}):
        response = httpx.delete(f"{platform.url}/api/spaces/tests/victim", headers=headers)
        assert response.status_code == 401, response.text
        assert "needs a token" in response.json()["message"]
        assert httpx.post(f"{platform.url}/api/spaces/tests/victim/pause", headers=headers).status_code == 401
    assert platform.space("tests/victim")["stage"] == "RUNNING"


def test_two_spaces_cannot_share_a_host_link(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "site", {"README.md": STATIC_README, "index.html": "first"})
    platform.cli("deploy", str(folder), "--name", "team-a/site", check=True)
    clash = platform.cli("deploy", str(folder), "--name", "team/a-site")
    assert clash.returncode == 1
    assert "would share the link team-a-site." in clash.stderr and "team-a/site" in clash.stderr


def test_stage_events_keep_streaming_through_quiet_periods(platform: Platform, tmp_path: Path) -> None:
    """The gallery's live badges: one SSE connection, quiet for longer than the keep-alive, then an event."""
    folder = write_app(tmp_path / "quiet", {"README.md": STATIC_README, "index.html": "quiet"})
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        with httpx.stream("GET", f"{platform.url}/api/events", timeout=httpx.Timeout(5, read=40)) as stream:
            for line in stream.iter_lines():
                lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    wait_for_line(lines, lambda line: line.startswith(": ping"), timeout=25)  # a quiet period passed
    platform.cli("deploy", str(folder), "--name", "tests/quiet", check=True)
    wait_for_line(lines, lambda line: line.startswith("data:") and '"tests/quiet"' in line, timeout=20)


def wait_for_line(lines: queue.Queue[str], wanted: Callable[[str], bool], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if wanted(line):
            return line
    raise AssertionError(f"no such line on /api/events within {timeout} s")


def test_stopping_the_platform_does_not_wait_for_open_browser_tabs(tmp_path: Path) -> None:
    """An open gallery tab holds an endless event stream: Ctrl-C must still stop the platform at once, not after
    the graceful-shutdown limit (stop grace + 5 s: set to 305 s here, so that waiting for the tab cannot pass)."""
    server = Platform(tmp_path / "data", env={"SPACES_RUNNER_ENABLED": "false", "SPACES_STOP_GRACE_S": "300"})
    server.start()
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        events_url = f"{server.url}/api/events"  # no read timeout: a browser tab waits forever
        with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", events_url, timeout=None) as stream:
            for line in stream.iter_lines():
                lines.put(line)

    tab = threading.Thread(target=read, daemon=True)
    tab.start()
    wait_for_line(lines, lambda line: line.startswith("retry:"), timeout=10)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.stop(signal.SIGKILL)
        raise AssertionError("shutdown waited for the open event stream") from None
    tab.join(timeout=10)
    assert not tab.is_alive(), "the platform exited but the tab's event stream stayed open"
