"""`spaces run DIR` runs the app as the platform would: built in the build jail, in the same sandbox (its own uid,
/data, /home/user/app), reachable on 127.0.0.1:PORT, and gone when it is stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from polling import wait_until

from spaces_harness import REPO, free_port, gradio_readme, write_app

pytestmark = pytest.mark.slow

APP = '''
import os, pathlib
import gradio as gr

def where(_):
    return f"uid={os.getuid()} data={pathlib.Path('/data').is_dir()} cwd={os.getcwd()}"

gr.Interface(where, "text", "text", api_name="where").launch()
'''


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_spaces_run_serves_the_app_from_its_sandbox_and_cleans_up(tmp_path: Path) -> None:
    folder = write_app(tmp_path / "app", {"README.md": gradio_readme("Run"), "app.py": APP})
    port = free_port()
    env = {**os.environ, "SPACES_DATA_DIR": str(tmp_path / "data"), "SPACES_RUNNER_ENABLED": "false",
           # uids of its own, so that no other platform's app on this host can be taken for this one
           "SPACES_SANDBOX_UID_BASE": str(210_000_000 + os.getpid() % 100_000 * 10)}
    process = subprocess.Popen([sys.executable, "-m", "spaces_runtime.cli", "run", str(folder), "--port", str(port)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/config") or process.poll() is not None, 300,
                   "spaces run to serve the app")
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        answer = Client(f"http://127.0.0.1:{port}/", verbose=False).predict("x", api_name="/where")
        uid = int(answer.split()[0].removeprefix("uid="))
        assert uid not in (0, os.getuid()) and "data=True" in answer and "cwd=/home/user/app" in answer
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    output = process.stdout.read() if process.stdout else ""
    assert code == 0, output
    assert "in the sandbox" in output and "WITHOUT the sandbox" not in output
    assert not _answers(f"http://127.0.0.1:{port}/config")
    assert not [p for p in Path("/proc").glob("[0-9]*/status") if _owner(p) == uid], "the app outlived Ctrl-C"


def _owner(status: Path) -> int | None:
    try:
        return int(status.read_text().split("\nUid:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None
