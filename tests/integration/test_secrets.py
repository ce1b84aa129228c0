"""Secrets and variables through a real `spaces serve`: a Gradio app finds them in its environment, a secret's
value shows nowhere (API answers, the app page, events, the audit trail, logs, any file of the data dir: only
ciphertext), another user can neither list nor change them, and each change restarts the app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from huggingface_hub import HfApi
from polling import wait_until

from spaces_harness import Platform, gradio_readme, write_app

VALUE = "sk-test-7Hq2vXb9Lw4e"  # what must never show
NEW_VALUE = "sk-rotated-0011223344556677"
CLI = [sys.executable, "-m", "spaces_runtime.cli"]
APP = """\
import os

import gradio as gr

secret = os.environ.get("MY_SECRET", "")
print(f"secret length {len(secret)}", flush=True)
print(f"careless app prints: {secret or 'nothing'}", flush=True)


def echo(_: str) -> str:
    return f"{os.environ.get('GREETING', 'no variable')}|{len(os.environ.get('MY_SECRET', ''))}"


gr.Interface(echo, "text", "text", api_name="predict").launch()
"""


class People:
    def __init__(self, platform: Platform, tmp: Path) -> None:
        self.platform = platform
        self.tmp = tmp
        self.tokens: dict[str, str] = {}

    def cli(self, user: str, *args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        env = {**self.platform.cli_env(), "SPACES_DATA_DIR": str(self.tmp / "nowhere"),
               "SPACES_CONFIG_DIR": str(self.tmp / f"config-{user}"), "SPACES_TOKEN": self.tokens[user]}
        result = subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"{user}: spaces {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def call(self, user: str | None, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.request(method, f"{self.platform.url}{path}", headers=headers, timeout=30,
                             **kwargs)  # type: ignore[arg-type]

    def answer(self) -> str:
        """What the app's handler sees now: GREETING|len(MY_SECRET)."""
        client = Client(f"{self.platform.url}/spaces/alice/app/", verbose=False)
        return str(client.predict("x", api_name="/predict"))

    def wait_answer(self, expected: str) -> None:
        wait_until(lambda: self.platform.space("alice/app")["stage"] == "RUNNING" and self.answer() == expected,
                   timeout=300, what=f"the restarted app to answer {expected!r}", interval=0.5,
                   ignoring=(Exception,))


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> People:
    root = tmp_path_factory.mktemp("secrets")
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    people = People(platform, root)
    people.tokens.update(platform.add_users("alice", "bob"))
    yield people
    platform.stop()


@pytest.fixture(scope="module")
def deployed(people: People) -> People:
    """Secret and variable set before the first deploy: the app's first start has them."""
    set_secret = people.cli("alice", "secrets", "set", "alice/app", "MY_SECRET", stdin=VALUE + "\n")
    assert VALUE not in set_secret.stdout + set_secret.stderr
    people.cli("alice", "variables", "set", "alice/app", "GREETING", "hello from a variable")
    folder = write_app(people.tmp / "app", {"README.md": gradio_readme("Secret app"), "app.py": APP})
    people.cli("alice", "deploy", str(folder), "--name", "alice/app")
    return people


def run_log(people: People) -> str:
    return people.call("alice", "GET", "/api/spaces/alice/app/logs/run?follow=0").text


def test_the_app_gets_the_secret_and_the_variable(deployed: People) -> None:
    assert deployed.answer() == f"hello from a variable|{len(VALUE)}"
    log = wait_until(lambda: "careless app prints" in (text := run_log(deployed)) and text, timeout=60,
                     what="the app's first lines in its run log")
    assert f"secret length {len(VALUE)}" in log
    assert "careless app prints: ***" in log, "a value the app prints is masked"


def test_a_secret_is_listed_by_name_and_a_variable_with_its_value(deployed: People) -> None:
    listed = json.loads(deployed.cli("alice", "secrets", "list", "alice/app", "--json").stdout)
    assert list(listed) == ["MY_SECRET"] and set(listed["MY_SECRET"]) == {"key", "description", "updatedAt"}
    variables = deployed.call("alice", "GET", "/api/spaces/alice/app/variables").json()
    assert variables["GREETING"]["value"] == "hello from a variable"
    assert deployed.call(None, "GET", "/api/spaces/alice/app/variables").status_code == 200, "public: members"


def test_another_user_cannot_list_set_or_delete_secrets(deployed: People) -> None:
    path = "/api/spaces/alice/app/secrets"
    attempts = [("GET", {}), ("POST", {"json": {"key": "MY_SECRET", "value": "bob's"}}),
                ("DELETE", {"json": {"key": "MY_SECRET"}})]
    for method, kwargs in attempts:
        response = deployed.call("bob", method, path, **kwargs)
        assert response.status_code == 403, (method, response.text)
        assert deployed.call(None, method, path, **kwargs).status_code == 401
    refused = deployed.cli("bob", "variables", "set", "alice/app", "GREETING", "hijacked", check=False)
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    deployed.cli("alice", "settings", "alice/app", "--private", "true")
    try:
        for method, kwargs in [*attempts, ("GET", {})]:
            for target in (path, "/api/spaces/alice/app/variables"):
                response = deployed.call("bob", method, target, **kwargs)
                assert response.status_code == 404, (method, target, response.text)
    finally:
        deployed.cli("alice", "settings", "alice/app", "--private", "false")
    assert deployed.answer() == f"hello from a variable|{len(VALUE)}", "nothing bob tried changed the app"


def test_a_refused_body_is_not_echoed(deployed: People) -> None:
    for body in ({"value": VALUE}, {"key": "1BAD", "value": VALUE}, {"key": "OK_NAME", "value": [VALUE]}):
        response = deployed.call("alice", "POST", "/api/spaces/alice/app/secrets", json=body)
        assert response.status_code == 400 and VALUE not in response.text, response.text


def test_the_value_shows_nowhere(deployed: People) -> None:
    platform = deployed.platform
    answers = [deployed.call("alice", "GET", path).text for path in (
        "/api/spaces/alice/app", "/api/spaces/alice/app/secrets", "/api/spaces/alice/app/variables",
        "/api/spaces/alice/app/events", "/api/spaces/alice/app/logs/run?follow=0",
        "/api/spaces/alice/app/logs/build?follow=0", "/api/audit?space=alice/app", "/api/spaces", "/alice/app",
        "/")]
    answers.append(deployed.cli("alice", "secrets", "list", "alice/app").stdout)
    answers.append(platform.cli("events", "--json", check=True).stdout)
    for text in answers:
        assert VALUE not in text
    audit = deployed.call("alice", "GET", "/api/audit?space=alice/app").json()
    assert any(e["action"] == "set secret" and e["detail"] == "MY_SECRET" and e["actor"] == "alice" for e in audit)
    found = [path for path in [*_platform_files(platform.data_dir), platform.log_path]
             if path.is_file() and not path.is_symlink() and _holds(path, VALUE.encode())]
    assert found == [], "only ciphertext at rest"
    command_lines = [path for path in Path("/proc").glob("[0-9]*/cmdline")
                     if _readable(path) and VALUE.encode() in _readable(path)]
    assert command_lines == [], "no process's command line shows it (every host user can read them)"


def _platform_files(root: Path) -> list[Path]:
    """Every file under the data dir but the packages uv installed into environments (tens of thousands of files
    from the index, which no secret reaches: a process-backend build gets none); the environments' own records
    (marker, lock) are read."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("site-packages", "__pycache__")]
        files.extend(Path(folder, name) for name in names)
    return files


def _holds(path: Path, value: bytes) -> bool:
    """Whether the file's bytes hold value, reading only its data: a space's /data disk is a 20 GiB sparse image
    whose holes (zeros, which cannot hold the value) took a minute to read. A data region runs to the next hole,
    so a value stored in the file lies inside one region."""
    with path.open("rb") as file:
        end, start = os.fstat(file.fileno()).st_size, 0
        while start < end:
            try:
                start = os.lseek(file.fileno(), start, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after start
                return False
            stop = os.lseek(file.fileno(), start, os.SEEK_HOLE)
            file.seek(start)
            if value in file.read(stop - start):
                return True
            start = stop
    return False


def _readable(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def test_the_hub_client_reads_and_writes_them(deployed: People) -> None:
    """huggingface_hub's own calls, on a space not deployed (no restart): the Hub's paths and shapes."""
    api = HfApi(endpoint=deployed.platform.url, token=deployed.tokens["alice"])
    api.add_space_secret("alice/hub", "HUB_SECRET", VALUE, description="from huggingface_hub")
    secrets = api.get_space_secrets("alice/hub")
    assert secrets["HUB_SECRET"].description == "from huggingface_hub" and secrets["HUB_SECRET"].updated_at
    assert api.add_space_variable("alice/hub", "MODEL", "tiny")["MODEL"].value == "tiny"
    assert api.get_space_variables("alice/hub")["MODEL"].value == "tiny"
    assert api.delete_space_variable("alice/hub", "MODEL") == {}
    api.delete_space_secret("alice/hub", "HUB_SECRET")
    assert api.get_space_secrets("alice/hub") == {}


def test_a_reserved_name_is_refused_with_why(deployed: People) -> None:
    refused = deployed.cli("alice", "variables", "set", "alice/app", "SPACE_ID", "x", check=False)
    assert refused.returncode == 1 and "SPACE_ID is reserved" in refused.stderr


def test_setting_then_deleting_a_secret_restarts_the_app(deployed: People) -> None:
    response = deployed.call("alice", "POST", "/api/spaces/alice/app/secrets",
                             json={"key": "MY_SECRET", "value": NEW_VALUE})
    assert response.status_code == 200 and response.headers.get("x-spaces-restarted") == "1"
    assert NEW_VALUE not in response.text
    deployed.wait_answer(f"hello from a variable|{len(NEW_VALUE)}")
    deployed.cli("alice", "secrets", "delete", "alice/app", "MY_SECRET")
    deployed.wait_answer("hello from a variable|0")
    assert "careless app prints: nothing" in run_log(deployed)
    assert NEW_VALUE not in run_log(deployed)
