"""What a newcomer meets first in the CLI, run as a subprocess: `spaces init --sdk docker` points at a way that
works for docker apps, `spaces list` keeps every link whole on a narrow (80-column, piped) output, and `spaces
serve` on every interface says which link other machines open (and uses --public-host in every link)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spaces_harness import REPO, Platform, free_port, write_app


def spaces(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spaces_runtime.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)


def test_init_docker_suggests_the_docker_path_not_spaces_run(tmp_path: Path) -> None:
    folder = tmp_path / "my-api"
    result = spaces("init", str(folder), "--sdk", "docker")
    assert result.returncode == 0, result.stderr
    assert "spaces run" not in result.stdout  # the default backend refuses docker apps
    assert f"spaces build {folder}" in result.stdout and "spaces serve --backend docker" in result.stdout
    readme = (folder / "README.md").read_text()
    assert "spaces run" not in readme and "spaces build ." in readme


def test_init_gradio_still_suggests_spaces_run(tmp_path: Path) -> None:
    result = spaces("init", str(tmp_path / "demo"), "--sdk", "gradio")
    assert result.returncode == 0 and f"spaces run {tmp_path / 'demo'}" in result.stdout


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("listing")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        site = write_app(root / "site", {"README.md": "---\ntitle: Site\nemoji: 📄\nsdk: static\n---\n",
                                          "index.html": "hi"})
        for name in ("a-rather-long-owner-name/an-even-longer-space-name-for-the-listing", "bo/x"):
            server.cli("deploy", str(site), "--name", name, check=True)
        yield server
    finally:
        server.stop()


def test_list_keeps_each_link_whole_on_one_line_at_80_columns(platform: Platform) -> None:
    env = {**os.environ, "SPACES_SERVER": platform.url, "COLUMNS": "80"}
    result = spaces("list", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["space", "stage", "sdk", "url"]
    long_id = "a-rather-long-owner-name/an-even-longer-space-name-for-the-listing"
    row = next(line for line in lines if long_id in line)
    assert row.split()[1:] == [long_id, "RUNNING", "static", f"http://localhost:{platform.port}/spaces/{long_id}/"]
    assert len(lines) == 3  # a header and one line per space: nothing folded onto a second line
    # the columns line up, so the URLs start at the same place
    assert len({line.index("http://") for line in lines[1:]}) == 1


def test_serve_on_every_interface_says_which_link_other_machines_open(tmp_path: Path) -> None:
    server = Platform(tmp_path / "data", extra_args=["--host", "0.0.0.0"],
                      env={"SPACES_RUNNER_ENABLED": "false"}).start()
    server.stop()
    said = " ".join(server.log_path.read_text().split())
    machine = socket.gethostname()
    assert f"from other machines open http://{machine}:{server.port}/" in said
    assert f"restart with --public-host {machine}:{server.port}" in said


def test_serve_with_a_public_host_prints_and_lists_links_under_it(tmp_path: Path) -> None:
    public = f"spaces-box.test:{free_port()}"
    server = Platform(tmp_path / "data", extra_args=["--host", "0.0.0.0", "--public-host", public],
                      env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        assert f"gallery at http://{public}/" in server.log_path.read_text()
        site = write_app(tmp_path / "site", {"README.md": "---\ntitle: Site\nsdk: static\n---\n", "index.html": "hi"})
        deployed = server.cli("deploy", str(site), "--name", "alice/site", check=True)
        assert f"http://{public}/spaces/alice/site/" in deployed.stdout
        listed = spaces("list", env={**os.environ, "SPACES_SERVER": server.url})
        assert f"http://{public}/spaces/alice/site/" in listed.stdout
        # the link works whatever name reaches the machine: the path form does not depend on the host
        answer = httpx.get(f"{server.url}/spaces/alice/site/", headers={"Host": public}, timeout=10)
        assert answer.status_code == 200 and answer.text == "hi"
    finally:
        server.stop()
