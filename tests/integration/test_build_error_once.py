"""A requirement that cannot be installed, deployed to a real `spaces serve`: uv's resolution error shows once in
the build log, once in the stage's error, once on the app page and once in `spaces deploy`'s output, next to
one line naming the requirements.txt line to fix."""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest

from spaces_harness import Platform, gradio_readme, write_app

pytestmark = pytest.mark.slow

MISSING = "no-such-package-for-spaces-runtime-0xdeadbeef"
UV_SAYS = f"Because {MISSING} was not found in the package registry"  # uv's own words
VERDICT = f"requirements.txt line 2: '{MISSING}==1.0' could not be installed"


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    root = tmp_path_factory.mktemp("once")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        folder = write_app(root / "badreq", {"README.md": gradio_readme("Bad requirement"),
                                             "app.py": "import gradio as gr\n",
                                             "requirements.txt": f"numpy\n{MISSING}==1.0\n"})
        deployed = server.cli("deploy", str(folder), "--name", "alice/badreq")
        assert deployed.returncode == 1
        yield server, deployed.stderr
    finally:
        server.stop()


def flat(text: str) -> str:
    """Rich wraps the CLI's lines at the terminal width; compare words, not line breaks."""
    return " ".join(text.split())


def test_the_build_log_shows_uvs_error_once_and_the_line_to_fix_once(failed: tuple[Platform, str]) -> None:
    server, _ = failed
    log = server.cli("logs", "alice/badreq", "--build", check=True).stdout
    assert log.count(UV_SAYS) == 1, log
    assert log.count(VERDICT) == 1 and f"ERROR: {VERDICT} (fix or remove that line" in log


def test_the_stages_error_names_the_line_and_carries_uvs_error_once(failed: tuple[Platform, str]) -> None:
    server, _ = failed
    space = server.space("alice/badreq")
    assert space["stage"] == "BUILD_ERROR"
    assert space["error"].startswith(VERDICT) and space["error"].count(UV_SAYS) == 1, space["error"]


def test_the_app_page_shows_the_error_once(failed: tuple[Platform, str]) -> None:
    server, _ = failed
    page = html.unescape(httpx.get(f"{server.url}/alice/badreq", timeout=10).text)
    assert page.count(UV_SAYS) == 1 and page.count(VERDICT) == 1, page
    assert "==> installing gradio==" in page  # what led up to it is still there, in the log's last lines


def test_spaces_deploy_prints_the_error_once(failed: tuple[Platform, str]) -> None:
    _, stderr = failed
    text = flat(stderr)
    assert text.count(UV_SAYS) == 1 and text.count(VERDICT) == 1, stderr
    assert text.endswith("BUILD_ERROR alice/badreq (the build log above says why)")
