"""A real `spaces serve` subprocess for integration and browser tests, and small helpers to drive it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
TERMINAL = {"RUNNING", "NO_APP_FILE", "CONFIG_ERROR", "BUILD_ERROR", "RUNTIME_ERROR", "PAUSED", "STOPPED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def example_url(self, name: str) -> str:
        """The path-form link of an example deployed by ``serving_examples`` (owner "examples")."""
        return f"{self.url}/spaces/examples/{name}/"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"serve-{self.port}.log"

    def command(self) -> list[str]:
        """How this platform's `spaces serve` is started."""
        return [sys.executable, "-m", "spaces_runtime.cli", "serve", "--port", str(self.port),
                "--data-dir", str(self.data_dir), *self.extra_args]

    def start(self, timeout: float = 60) -> Platform:
        env = {**os.environ, "SPACES_SERVER": self.url, "PYTHONUNBUFFERED": "1", **self.env}
        argv = self.command()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"spaces serve exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"spaces serve did not answer in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    @property
    def token(self) -> str:
        """The local admin token the platform made on first start."""
        return (self.data_dir / "token").read_text().strip()

    @property
    def auth(self) -> dict[str, str]:
        """Headers of a request made with the admin's token."""
        return {"Authorization": f"Bearer {self.token}"}

    def cli_env(self) -> dict[str, str]:
        """The CLI as the platform's own user runs it: it finds the admin token in the data dir."""
        return {**os.environ, "SPACES_SERVER": self.url, "SPACES_DATA_DIR": str(self.data_dir),
                "SPACES_CONFIG_DIR": str(self.data_dir.parent / "cli-config"), **self.env}

    def cli(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = self.cli_env()
        result = subprocess.run([sys.executable, "-m", "spaces_runtime.cli", *args], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"spaces {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                                 f"{result.stderr}")
        return result

    def add_users(self, *names: str, token_name: str = "laptop") -> dict[str, str]:
        """Users made by the admin's CLI, each with a write token of its own: name → token."""
        tokens = {}
        for name in names:
            self.cli("users", "add", name, check=True)
            made = self.cli("tokens", "create", "--user", name, "--name", token_name, "--json", check=True)
            tokens[name] = json.loads(made.stdout)["token"]
        return tokens

    def space(self, space_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/spaces/{space_id}", timeout=10)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def wait_for(self, space_id: str, stages: Iterable[str] = ("RUNNING",), timeout: float = 300) -> dict[str, Any]:
        wanted = set(stages)
        deadline = time.monotonic() + timeout
        space: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                space = self.space(space_id)
            except httpx.HTTPStatusError:
                space = {}
            if space.get("stage") in wanted:
                return space
            if space.get("stage") in TERMINAL - wanted:
                break
            time.sleep(0.5)
        raise AssertionError(f"{space_id} did not reach {sorted(wanted)}: {space.get('stage')} "
                             f"{space.get('error')}\n{self.log_path.read_text()[-3000:]}")

    def wait_all_running(self, timeout: float = 600) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spaces = httpx.get(f"{self.url}/api/spaces", timeout=10).json()
            if spaces and all(s["stage"] == "RUNNING" for s in spaces):
                return spaces  # type: ignore[no-any-return]
            failed = [s for s in spaces if s["stage"] in TERMINAL - {"RUNNING"}]
            if failed:
                raise AssertionError(f"spaces failed: {[(s['id'], s['stage'], s['error']) for s in failed]}")
            time.sleep(1)
        raise AssertionError(f"not all RUNNING after {timeout}s: {[(s['id'], s['stage']) for s in spaces]}")


@contextmanager
def serving_examples(root: Path, names: Iterable[str], extra_args: Iterable[str] = (),
                     env: dict[str, str] | None = None, timeout: float = 600) -> Iterator[Platform]:
    """`spaces serve --examples` with copies of the named example apps, once they all run; stopped after."""
    examples = root / "examples"
    examples.mkdir()
    for name in names:
        copy_app(EXAMPLES / name, examples / name)
    server = Platform(root / "data", extra_args=["--examples", str(examples), *extra_args], env=env or {})
    server.start(timeout=120)
    try:
        server.wait_all_running(timeout=timeout)
        yield server
    finally:
        server.stop()


def copy_app(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    return dest


def write_app(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def gradio_readme(title: str = "Test app", sdk_version: str = "6.31.0") -> str:
    return f"---\ntitle: {title}\nemoji: 🧪\nsdk: gradio\nsdk_version: {sdk_version}\napp_file: app.py\n---\n"
