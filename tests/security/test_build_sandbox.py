"""Attacks from a package's build code: a real `spaces serve` (process backend), a package index served here.

A package's setup.py runs at build time, before any app exists. The one written here, served from a local index
and named in an app's requirements.txt, tries what a hostile author would from there: the platform's store and
runner secret, another space's code, planting a .pth into another space's finished environment, the data dir,
the platform's own code. Every attempt must fail, the build must run as the unprivileged build identity, and
the neighbour must keep serving with its environment intact. (That a jailed build of a real dependency works is
what every other process-backend test deploys through.)
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import sqlite3
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from spaces_harness import Platform, gradio_readme, write_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
PACKAGE = "spaces-runtime-build-attack-probe"
SECRET = "runner-secret-no-build-may-read"
REPO = Path(__file__).resolve().parents[2]

NEIGHBOUR = '''
import gradio as gr
demo = gr.Interface(lambda s: "still here " + s, "text", "text", api_name="hello")
demo.launch()
'''

SETUP = '''
import json, os, sys
T = json.loads({targets!r})

def attempt(action):
    try:
        return "SUCCEEDED: " + str(action())[:100]
    except Exception as exc:
        return "blocked: " + type(exc).__name__

def plant(folder):
    with open(os.path.join(folder, "evil.pth"), "w") as f:
        f.write("import os\\n")
    return folder

found = {{
    "uid": os.getuid(),
    "store": attempt(lambda: open(T["db"], "rb").read(16)),
    "runner_secret": attempt(lambda: open(T["secret"]).read()),
    "neighbour_code": attempt(lambda: open(T["neighbour_code"]).read()),
    "neighbour_env": attempt(lambda: plant(T["neighbour_site"])),
    "data_dir": attempt(lambda: plant(T["data"])),
    "platform_code": attempt(lambda: os.listdir(T["platform_code"])),
}}
print("BUILD-ATTACK " + json.dumps(found), file=sys.stderr, flush=True)
sys.exit("the probe is done")  # the build fails, so uv prints what the build printed
'''


def _sdist(targets: dict[str, str]) -> bytes:
    """An sdist whose setup.py is the probe (uv builds it with setuptools' legacy backend)."""
    name = PACKAGE.replace("-", "_")
    files = {f"{name}-0.1/setup.py": SETUP.format(targets=json.dumps(targets)),
             f"{name}-0.1/PKG-INFO": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n"}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("build-sandbox") / "data"
    data.mkdir()
    (data / "runner.secret").write_text(SECRET)
    server = Platform(data, env={"SPACES_RUNNER_ENABLED": "false"})
    server.start()
    try:
        folder = write_app(data.parent / "neighbour", {"README.md": gradio_readme("Neighbour"), "app.py": NEIGHBOUR})
        server.cli("deploy", str(folder), "--name", "alice/neighbour", check=True)
        yield server
    finally:
        server.stop()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A PEP 503 index on loopback: (its folder, its /simple URL)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()


def _neighbour_env(platform: Platform) -> Path:
    for marker in (platform.data_dir / "envs").glob("*/.spaces-env.json"):
        return marker.parent
    raise AssertionError("the neighbour's environment was not found")


def test_a_packages_build_code_reaches_nothing_of_the_platform_or_its_neighbours(
        platform: Platform, index: tuple[Path, str], tmp_path: Path) -> None:
    env = _neighbour_env(platform)
    site = next(env.glob("lib/python*/site-packages"))
    with sqlite3.connect(platform.data_dir / "spaces.db") as db:
        code = Path(db.execute("SELECT code_dir FROM spaces WHERE id = 'alice/neighbour'").fetchone()[0]) / "app.py"
    targets = {"db": str(platform.data_dir / "spaces.db"), "secret": str(platform.data_dir / "runner.secret"),
               "neighbour_code": str(code), "neighbour_site": str(site), "data": str(platform.data_dir),
               "platform_code": str(REPO / "spaces_runtime")}
    folder, url = index
    sdist = f"{PACKAGE.replace('-', '_')}-0.1.tar.gz"
    (folder / "files").mkdir()
    (folder / "files" / sdist).write_bytes(_sdist(targets))
    (folder / "simple" / PACKAGE).mkdir(parents=True)
    (folder / "simple" / PACKAGE / "index.html").write_text(f'<a href="../../files/{sdist}">{sdist}</a>')
    attacker = write_app(tmp_path / "attacker", {
        "README.md": gradio_readme("Attacker"), "app.py": NEIGHBOUR,
        "requirements.txt": f"--extra-index-url {url}\n{PACKAGE}==0.1\n"})

    result = platform.cli("deploy", str(attacker), "--name", "mallory/attacker")
    assert result.returncode != 0
    platform.wait_for("mallory/attacker", ("BUILD_ERROR",))
    log = " ".join((result.stdout + result.stderr).split())  # the terminal wraps lines anywhere
    assert "BUILD-ATTACK " in log, log[-3000:]
    found = json.loads(log.split("BUILD-ATTACK ", 1)[1].split("}", 1)[0] + "}")
    for attack in ("store", "runner_secret", "neighbour_code", "neighbour_env", "data_dir", "platform_code"):
        assert found[attack].startswith("blocked"), f"{attack}: {found[attack]}"
    assert found["uid"] not in (0, os.getuid())
    # the neighbour is untouched and serves
    assert not (site / "evil.pth").exists() and not (platform.data_dir / "evil.pth").exists()
    assert env.stat().st_uid == 0 and site.stat().st_uid == 0  # a finished environment is root's again
    client = Client(f"{platform.url}/spaces/alice/neighbour/", verbose=False)
    assert client.predict("ok", api_name="/hello") == "still here ok"



def test_a_platform_with_another_uid_base_leaves_this_ones_build_cache_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staging beside production with its own SPACES_SANDBOX_UID_BASE: its build identity gets a cache of its
    own instead of taking the shared one, whose next build then failed with uv's Permission denied."""
    from spaces_runtime.config import Settings
    from spaces_runtime.sandbox.buildjail import BuildJail

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("SPACES_UV_CACHE_DIR", "SPACES_SANDBOX_UID_BASE"):  # Settings would read them
        monkeypatch.delenv(name, raising=False)
    tools = {"bwrap": "bwrap", "setpriv": "setpriv"}
    production = BuildJail(Settings(data_dir=tmp_path / "production"), tools, "uv")
    entry = production.cache_dir / "sdists-v11" / ".git"
    entry.parent.mkdir()
    entry.touch()
    os.chown(entry, production.uid, production.uid)
    staging = BuildJail(Settings(data_dir=tmp_path / "staging", sandbox_uid_base=210_000_000), tools, "uv")
    assert staging.cache_dir != production.cache_dir and staging.cache_dir.stat().st_uid == staging.uid
    assert entry.stat().st_uid == production.uid, "the second platform took the first one's build cache"
