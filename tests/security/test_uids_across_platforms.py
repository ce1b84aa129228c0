"""Two platforms on one host (production beside staging; two data dirs) never run two apps as one uid: an app of
one, were it to get out of its sandbox, could otherwise read the other's /data as the owner of its files.

Real `spaces serve` processes on the process backend, one app each under the same name (the case where both
platforms counted from the same base and gave both the same uid).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from spaces_harness import Platform, gradio_readme, write_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

KEEPER = '''
import os, pathlib
import gradio as gr
pathlib.Path("/data/secret.txt").write_text(f"the secret of uid {os.getuid()}")

def peek(path: str) -> str:
    try:
        with open(path) as f:
            return f"{os.getuid()} READ: {f.read()}"
    except OSError as exc:
        return f"{os.getuid()} blocked: {type(exc).__name__}"

demo = gr.Interface(peek, "text", "text", api_name="peek")
demo.launch(server_name="0.0.0.0", server_port=7860)
'''


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Platform]]:
    started = []
    try:
        for name in ("production", "staging"):
            data = tmp_path_factory.mktemp(name) / "data"
            data.mkdir()
            platform = Platform(data, extra_args=["--backend", "process"], env={"SPACES_RUNNER_ENABLED": "false"})
            started.append(platform.start())
            folder = write_app(data.parent / "keeper", {"README.md": gradio_readme("Keeper"), "app.py": KEEPER})
            platform.cli("deploy", str(folder), "--name", "alice/keeper", check=True)
        yield started[0], started[1]
    finally:
        for platform in started:
            platform.stop()


def _peek(platform: Platform, path: str) -> str:
    return str(Client(f"{platform.url}/spaces/alice/keeper/", verbose=False).predict(path, api_name="/peek"))


def _data(platform: Platform) -> Path:
    return platform.data_dir / "sandbox" / "data" / "alice--keeper"


def test_two_platforms_apps_run_as_two_uids_and_neither_reads_the_others_data(
        platforms: tuple[Platform, Platform]) -> None:
    production, staging = platforms
    theirs = _data(staging) / "secret.txt"
    seen = _peek(production, str(theirs))
    uid_production, uid_staging = int(seen.split()[0]), int(_peek(staging, "/data/secret.txt").split()[0])
    assert uid_production != uid_staging and 0 not in (uid_production, uid_staging)
    assert "blocked" in seen, seen  # the other platform's data dir is not in its view at all
    assert _peek(staging, "/data/secret.txt").endswith(f"READ: the secret of uid {uid_staging}")
    assert theirs.parent.stat().st_uid == uid_staging
    # and outside its sandbox, as its own uid: the staging app's /data answers only to the staging app's uid. The
    # folder is handed over as an open fd, so the folders above it (root's) are not what refuses.
    folder = os.open(theirs.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        escaped = subprocess.run([shutil.which("setpriv") or "setpriv", f"--reuid={uid_production}",
                                  f"--regid={uid_production}", "--clear-groups", "--", "cat",
                                  f"/proc/self/fd/{folder}/secret.txt"], pass_fds=[folder], capture_output=True,
                                 text=True, timeout=30, check=False)
        own = subprocess.run([shutil.which("setpriv") or "setpriv", f"--reuid={uid_staging}",
                              f"--regid={uid_staging}", "--clear-groups", "--", "cat",
                              f"/proc/self/fd/{folder}/secret.txt"], pass_fds=[folder], capture_output=True,
                             text=True, timeout=30, check=False)
    finally:
        os.close(folder)
    assert escaped.returncode != 0 and "Permission denied" in escaped.stderr, escaped
    assert own.stdout == f"the secret of uid {uid_staging}"  # the same read as the owner works: a fair test
