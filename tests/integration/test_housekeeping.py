"""Housekeeping through real `spaces serve` processes: `spaces gc` frees the environment a redeploy left behind
while the apps keep answering; `spaces backup` while serving, `spaces restore` into a fresh data dir, and a second
platform on it brings both spaces back RUNNING behind its own gateway (its automatic pass, under a disk budget,
collecting what no space there uses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from polling import wait_until

from spaces_harness import Platform, write_app

pytestmark = pytest.mark.slow

STATIC = {"README.md": "---\ntitle: Docs\nsdk: static\n---\n", "index.html": "<h1>kept docs</h1>\n"}
GRADIO_README = "---\ntitle: Echo\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n---\n"


def gradio_app(transform: str) -> str:
    return f"import gradio as gr\ngr.Interface(lambda s: {transform}, 'text', 'text', api_name='echo').launch()\n"


@dataclass
class Deployed:
    platform: Platform
    root: Path
    old_env: str  # the Gradio app's environment before its redeploy
    new_env: str


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("housekeeping")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        server.cli("deploy", str(write_app(root / "docs", STATIC)), "--name", "tests/docs", check=True)
        # httpx is one of gradio's own dependencies: naming it changes the environment, not what gets downloaded
        echo = write_app(root / "echo", {"README.md": GRADIO_README, "app.py": gradio_app("s"),
                                         "requirements.txt": "httpx\n"})
        server.cli("deploy", str(echo), "--name", "tests/echo", check=True)
        old_env = server.space("tests/echo")["env_hash"]
        (echo / "requirements.txt").unlink()
        (echo / "app.py").write_text(gradio_app("s.upper()"))
        server.cli("deploy", str(echo), "--name", "tests/echo", check=True)
        new_env = server.space("tests/echo")["env_hash"]
        assert old_env != new_env
        yield Deployed(server, root, old_env, new_env)
    finally:
        server.stop()


def gc(platform: Platform, *flags: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(platform.cli("gc", "--json", *flags, check=True).stdout)
    return report


def flat(text: str) -> str:
    """The CLI's words without the line breaks the terminal width put in."""
    return " ".join(text.split())


def assert_both_answer(platform: Platform, greeting: str = "HELLO") -> None:
    page = httpx.get(f"{platform.url}/spaces/tests/docs/", timeout=30)
    assert page.status_code == 200 and "kept docs" in page.text
    client = Client(f"{platform.url}/spaces/tests/echo/", verbose=False)
    assert client.predict("hello", api_name="/echo") == greeting


def test_gc_lists_the_environment_a_redeploy_left_and_frees_it_while_the_apps_answer(deployed: Deployed) -> None:
    platform, envs = deployed.platform, deployed.root / "data" / "envs"

    def listed() -> dict[str, Any] | None:
        report = gc(platform, "--dry-run")  # the old version drains for a moment: its process still runs there
        return report if deployed.old_env in {row["key"] for row in report["collect"]} else None

    report = wait_until(listed, timeout=60, what="gc --dry-run to list the replaced environment", interval=0.5)
    kept = {row["key"]: row["reason"] for row in report["keep"]}
    assert kept[deployed.new_env] == "the environment of tests/echo"
    old = next(row for row in report["collect"] if row["key"] == deployed.old_env)
    assert old["kind"] == "env" and old["bytes"] > 0
    assert (envs / deployed.old_env).is_dir()  # a dry run removes nothing

    done = gc(platform)
    assert deployed.old_env in {row["key"] for row in done["collect"]} and done["failures"] == []
    assert done["freed_bytes"] >= old["bytes"]
    assert not (envs / deployed.old_env).exists() and (envs / deployed.new_env).is_dir()
    assert_both_answer(platform)
    again = platform.cli("gc", "--dry-run", check=True)
    assert "would free 0 B (0 items)" in again.stdout


def test_a_backup_taken_while_serving_restores_every_space_running_on_a_fresh_data_dir(deployed: Deployed) -> None:
    archive = deployed.root / "backup.tar.gz"
    deployed.platform.cli("backup", str(archive), check=True)
    assert_both_answer(deployed.platform)  # taken while serving, without stopping anything

    fresh = deployed.root / "elsewhere" / "data"
    restored = deployed.platform.cli("restore", str(archive), "--data-dir", str(fresh), check=True)
    assert "restored 2 spaces" in restored.stdout and "rebuilds each one" in flat(restored.stderr)
    refused = deployed.platform.cli("restore", str(archive), "--data-dir", str(fresh))
    assert refused.returncode == 1 and "already holds a platform" in flat(refused.stderr)

    leftover = fresh / "envs" / ("f" * 64)  # an environment no space of the restored platform uses
    (leftover / "bin").mkdir(parents=True)
    (leftover / ".spaces-env.json").write_text("{}")
    second = Platform(fresh, env={"SPACES_RUNNER_ENABLED": "false", "SPACES_DISK_BUDGET_BYTES": "1",
                                  "SPACES_GC_INTERVAL_S": "1"}).start()
    try:
        for space_id in ("tests/docs", "tests/echo"):
            space = second.wait_for(space_id, timeout=600)
            assert space["url"].startswith(f"http://localhost:{second.port}/")
        assert second.space("tests/echo")["env_hash"] == deployed.new_env
        assert_both_answer(second)
        wait_until(lambda: not leftover.exists(), timeout=60, what="the automatic pass to remove the leftover",
                   interval=0.2)
        assert (fresh / "envs" / deployed.new_env).is_dir()  # in use: over the budget, but kept
        assert_both_answer(second)
    finally:
        second.stop()
