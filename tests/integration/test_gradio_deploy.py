"""`gradio deploy`, Gradio's own CLI (the real package from PyPI, in a virtualenv of its own), pointed at a real
`spaces serve` with HF_ENDPOINT and a platform token, as a Hugging Face user runs it from an app folder: the space
is created in the user's namespace, the folder uploaded, and the app answers through its link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from spaces_harness import Platform, gradio_readme, write_app

pytestmark = pytest.mark.slow
GRADIO = "gradio==6.31.0"
APP = """import gradio as gr

gr.Interface(lambda name: f"deployed for {name}", "text", "text", api_name="greet").launch()
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    root = tmp_path_factory.mktemp("gradio-deploy")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        server.cli("users", "add", "alice", check=True)
        made = server.cli("tokens", "create", "--user", "alice", "--json", check=True)
        yield server, json.loads(made.stdout)["token"]
    finally:
        server.stop()


def gradio_cli(root: Path) -> Path:
    """Gradio from PyPI in a virtualenv of its own (uv, with the platform's shared cache)."""
    venv = root / "gradio-cli"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "venv", "-q", "-p", "3.11", str(venv)], check=True, timeout=300)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), GRADIO], check=True,
                   timeout=600)
    return venv / "bin" / "gradio"


def test_gradio_deploy_creates_uploads_and_runs_the_app(platform: tuple[Platform, str], tmp_path: Path) -> None:
    server, token = platform
    # the README's title is the space's name for `gradio deploy`
    folder = write_app(tmp_path / "greeter", {"README.md": gradio_readme("greeter-deployed"), "app.py": APP})
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_TOKEN": token, "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([str(gradio_cli(tmp_path)), "deploy"], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Space available at" in done.stdout and "alice/greeter-deployed" in done.stdout
    space = server.wait_for("alice/greeter-deployed")
    assert space["sdk"] == "gradio"
    client = Client(f"{server.url}/spaces/alice/greeter-deployed/", verbose=False)
    assert client.predict("alice", api_name="/greet") == "deployed for alice"
