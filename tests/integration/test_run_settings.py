"""What a space runs on, from its owner's side and from everyone else's: the README's `suggested_hardware` picks
its tier, `spaces settings --hardware` (or huggingface_hub's `request_space_hardware`) changes it and restarts the
app on it, a tier or a replica count this platform cannot give is refused with what it can, and no one but the
space's writers changes any of it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi
from polling import wait_until

from spaces_harness import Platform, write_app

CLI = [sys.executable, "-m", "spaces_runtime.cli"]
SPACE = "alice/tiers"
README = ("---\ntitle: Tiers\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n"
          "suggested_hardware: cpu-upgrade\nreplicas: 2\n---\n")
APP = """import gradio as gr

with gr.Blocks() as demo:
    gr.Button("Ping").click(lambda: "pong", None, gr.Textbox(), api_name="ping")

demo.launch()
"""


@dataclass
class Owners:
    platform: Platform
    tmp: Path
    tokens: dict[str, str]

    def as_user(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.platform.cli_env(), "SPACES_DATA_DIR": str(self.tmp / "nowhere"),
               "SPACES_CONFIG_DIR": str(self.tmp / f"config-{user}"), "SPACES_TOKEN": self.tokens[user]}
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)

    def space(self) -> dict[str, Any]:
        return httpx.get(f"{self.platform.url}/api/spaces/{SPACE}", headers=self.platform.auth, timeout=30).json()

    def run_log(self) -> str:
        return httpx.get(f"{self.platform.url}/api/spaces/{SPACE}/logs/run", params={"follow": 0},
                         headers=self.platform.auth, timeout=30).text

    def started_at(self) -> float:
        runtime = self.space()["runtime"] or {}
        return float(runtime.get("started_at") or 0.0)  # 0 while no instance serves

    def wait_restarted_on(self, tier: str, after: float) -> None:
        """Running again, a newer instance than ``after``, its run log naming the tier it was given."""
        wait_until(lambda: self.space()["stage"] == "RUNNING" and self.started_at() > after
                   and f"(hardware {tier}:" in self.run_log().rsplit("$ app.py in the sandbox", 1)[-1][:200],
                   timeout=300, what=f"{SPACE} restarted on {tier}")


@pytest.fixture(scope="module")
def owners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owners]:
    root = tmp_path_factory.mktemp("run-settings")
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    tokens = platform.add_users("alice", "bob")
    made = Owners(platform, root, tokens)
    deployed = made.as_user("alice", "deploy", str(write_app(root / "tiers", {"README.md": README, "app.py": APP})),
                            "--name", SPACE)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    yield made
    platform.stop()


def test_the_readme_s_tier_is_the_one_it_runs_on_and_the_logs_say_why(owners: Owners) -> None:
    space = owners.space()
    assert space["hardware"] == {"current": "cpu-upgrade", "source": "README suggested_hardware", "requested": None}
    assert space["replicas"]["current"] == 1  # README replicas: 2, but the process backend runs one instance
    build = httpx.get(f"{owners.platform.url}/api/spaces/{SPACE}/logs/build", params={"follow": 0},
                      headers=owners.platform.auth, timeout=30).text
    assert "==> hardware: cpu-upgrade (README suggested_hardware)" in build
    assert "warning: README replicas: 2: the process backend runs one instance per space" in build
    assert "(hardware cpu-upgrade:" in owners.run_log()


def test_the_owner_changes_the_tier_and_the_app_restarts_on_it(owners: Owners) -> None:
    before = owners.started_at()
    changed = owners.as_user("alice", "settings", SPACE, "--hardware", "t4-small")
    assert changed.returncode == 0, changed.stderr
    assert f"{SPACE}: hardware t4-small (spaces settings)" in changed.stdout
    owners.wait_restarted_on("t4-small", before)
    runtime = HfApi(endpoint=owners.platform.url, token=owners.tokens["alice"]).get_space_runtime(SPACE)
    assert (runtime.hardware, runtime.requested_hardware) == ("t4-small", "t4-small")


def test_huggingface_hub_s_request_space_hardware_moves_it_too(owners: Owners) -> None:
    before = owners.started_at()
    HfApi(endpoint=owners.platform.url, token=owners.tokens["alice"]).request_space_hardware(SPACE, "cpu-basic")
    owners.wait_restarted_on("cpu-basic", before)
    assert owners.space()["hardware"] == {"current": "cpu-basic", "source": "spaces settings",
                                          "requested": "cpu-basic"}


def test_what_this_platform_cannot_give_is_refused_with_what_it_can(owners: Owners) -> None:
    before, tier = owners.started_at(), owners.space()["hardware"]
    unknown = owners.as_user("alice", "settings", SPACE, "--hardware", "h100-giant")
    said = " ".join(unknown.stderr.split())  # the CLI wraps its error to the terminal's width
    assert unknown.returncode != 0 and "hardware 'h100-giant' is not a tier of this platform" in said
    assert "cpu-upgrade" in said  # the tiers it has
    replicas = owners.as_user("alice", "settings", SPACE, "--replicas", "3")
    said = " ".join(replicas.stderr.split())
    assert replicas.returncode != 0 and "runs the process backend" in said and "spaces serve --backend swarm" in said
    assert (owners.started_at(), owners.space()["hardware"]) == (before, tier)  # nothing changed, no restart


def test_no_one_but_its_writers_changes_what_it_runs_on(owners: Owners) -> None:
    before, tier = owners.started_at(), owners.space()["hardware"]
    cli = owners.as_user("bob", "settings", SPACE, "--hardware", "a100-large")
    assert cli.returncode != 0 and "HTTP 403" in cli.stderr
    hub = httpx.post(f"{owners.platform.url}/api/spaces/{SPACE}/hardware", json={"flavor": "a100-large"},
                     headers={"Authorization": f"Bearer {owners.tokens['bob']}"}, timeout=30)
    anonymous = httpx.put(f"{owners.platform.url}/api/spaces/{SPACE}/run", json={"hardware": "a100-large"},
                          timeout=30)
    assert (hub.status_code, anonymous.status_code) == (403, 401)
    assert (owners.started_at(), owners.space()["hardware"]) == (before, tier)


def test_default_gives_the_readme_s_tier_back(owners: Owners) -> None:
    """Last: it restarts once more, and the module's platform stops while it does."""
    back = owners.as_user("alice", "settings", SPACE, "--hardware", "default")
    assert back.returncode == 0 and f"{SPACE}: hardware cpu-upgrade (README suggested_hardware)" in back.stdout
    assert owners.space()["hardware"]["requested"] is None
