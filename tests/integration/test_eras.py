"""Spaces of older SDK eras deploy unchanged: Gradio 4.44 and 5.9, Streamlit 1.17 and 1.25 (unpinned pandas and
altair), a `python_version: "3.12"` app and one that hard-codes `server_port=7860` each run on the process backend
and answer through the gateway exactly as the same app run directly (named endpoints and outputs, called with the
gradio_client of the app's own era; Streamlit's elements and text from one script run over its era's WebSocket,
without an exception).

"Directly" is how Hugging Face ran the app when it was published: a fresh virtualenv with the pinned SDK and
requirements.txt resolved as of that SDK's release, `python app.py`. One platform for the module; every app is
uploaded at once and built side by side. The builds download packages into uv's cache (minutes when cold).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from era_apps import APPS, GRADIO_4, PYTHON_3_12, STREAMLIT_1_17, DirectEras, EraApp, probe
from prerequisites import missing

from builder import plan as build_plan
from builder import spec as build_spec
from builder.venv import LOCK, MARKER, VenvBuilder
from spaces_harness import Platform, free_port
from spaces_runtime.config import Settings
from spaces_runtime.sdk_eras import stream_path

# the first test waits for every build (five virtualenvs here, five on the platform): minutes with a cold uv cache
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
OWNER = "eras"




def _deploy(server: Platform, app: EraApp, root: Path) -> None:
    folder = app.write(root / app.name)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    token = server.data_dir / "token"  # the local admin token the platform writes on first start
    auth = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
    response = httpx.put(f"{server.url}/api/spaces/{OWNER}/{app.name}", content=buffer.getvalue(), timeout=60,
                         headers={"Content-Type": "application/gzip", **auth})
    assert response.status_code == 202, response.text


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("eras")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start(timeout=120)
    try:
        for app in APPS:  # all at once: the platform builds them side by side
            _deploy(server, app, root / "upload")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def direct(direct_eras: DirectEras) -> DirectEras:
    """Each app's era virtualenv, as its author had it (shared with the docker backend's era test)."""
    absent = direct_eras.absent(APPS)
    if absent:
        missing(f"this host has no Python {', '.join(absent)} to run the era apps directly")
    with ThreadPoolExecutor(max_workers=len(APPS)) as pool:  # uv waits on the network, not the CPU
        list(pool.map(direct_eras.built, APPS))
    return direct_eras


@pytest.mark.parametrize("app", APPS, ids=[app.name for app in APPS])
def test_era_app_answers_through_the_gateway_as_it_does_directly(
        app: EraApp, platform: Platform, direct: DirectEras) -> None:
    expected = direct.answer(app, free_port())
    space = platform.wait_for(f"{OWNER}/{app.name}", timeout=1200)
    assert space["stage"] == "RUNNING"
    answer = probe(app, direct.python(app), f"{platform.url}/spaces/{OWNER}/{app.name}/")
    assert answer == expected
    if app.sdk == "gradio":
        assert answer["endpoints"] == sorted(name for name, _ in app.calls)
    else:
        assert answer["exceptions"] == [] and answer["texts"], answer


def test_the_answers_are_what_each_app_computes(platform: Platform, direct: DirectEras) -> None:
    """The equality above must not be two identical failures: spot-check real outputs."""
    python = direct.python(PYTHON_3_12)
    platform.wait_for(f"{OWNER}/{PYTHON_3_12.name}", timeout=1200)
    answer = probe(PYTHON_3_12, python, f"{platform.url}/spaces/{OWNER}/{PYTHON_3_12.name}/")
    assert answer["outputs"] == {"/python": "3.12"}
    platform.wait_for(f"{OWNER}/{STREAMLIT_1_17.name}", timeout=1200)
    st = probe(STREAMLIT_1_17, direct.python(STREAMLIT_1_17),
               f"{platform.url}/spaces/{OWNER}/{STREAMLIT_1_17.name}/")
    assert STREAMLIT_1_17.stream_path == stream_path(STREAMLIT_1_17.sdk_version) == "stream"
    assert "arrow_vega_lite_chart" in st["elements"] and "total **12**" in st["texts"]


def test_build_log_names_the_interpreter_and_the_resolution_date(platform: Platform) -> None:
    for app, expected in ((PYTHON_3_12, "==> Python 3.12."), (STREAMLIT_1_17, "==> resolving as of 2023-01-13")):
        platform.wait_for(f"{OWNER}/{app.name}", timeout=1200)
        log = httpx.get(f"{platform.url}/api/spaces/{OWNER}/{app.name}/logs/build", params={"follow": 0},
                        timeout=30).text
        assert expected in log, log[-3000:]
    locks = [path.read_text() for path in (platform.data_dir / "envs" / ".locks").glob("*.txt")]
    streamlit_lock = next(text for text in locks if "\nstreamlit==1.17.0\n" in text)
    assert "\naltair==4." in streamlit_lock  # as of January 2023: altair 5 (no vegalite.v4) came later


def test_a_rebuild_installs_the_recorded_lock(tmp_path: Path) -> None:
    """An environment removed (spaces gc, a restore onto a new disk) comes back with the same versions, even
    where today's resolution would pick others."""
    settings = Settings(data_dir=tmp_path / "data")
    plan = build_plan.make(build_spec.load(STREAMLIT_1_17.write(tmp_path / "app")), settings)
    builder = VenvBuilder(settings.envs_dir, settings)
    first = builder.build(plan, lambda _: None)
    recorded = (first / LOCK).read_text()
    builder.stop_compile(first)  # its bytecode is written in the background: a folder still being written
    shutil.rmtree(first)
    lines: list[str] = []
    again = builder.build(plan, lines.append)
    assert any("packages recorded when environment" in line for line in lines), lines
    assert not any("resolving as of" in line for line in lines)
    assert (again / LOCK).read_text() == recorded
    marker = json.loads((again / MARKER).read_text())
    assert marker["resolved"] == "lock" and marker["era_rule"] == "as-of:streamlit==1.17.0+1d"


def test_a_pin_newer_than_the_sdk_era_still_builds_as_of_today(tmp_path: Path) -> None:
    """A requirement pinned to a release after the SDK's (huggingface_hub 0.25.2 came a month after gradio 4.44)
    cannot resolve as of the SDK's era; the build says so and resolves as of today instead of failing."""
    app = replace(GRADIO_4, requirements="huggingface_hub==0.25.2\n")
    settings = Settings(data_dir=tmp_path / "data")
    plan = build_plan.make(build_spec.load(app.write(tmp_path / "app")), settings)
    lines: list[str] = []
    env = VenvBuilder(settings.envs_dir, settings).build(plan, lines.append)
    assert any(line.startswith("==> resolving as of 2024-09-11 failed (requirements.txt line 1") for line in lines)
    assert "huggingface-hub==0.25.2" in (env / LOCK).read_text().lower().replace("_", "-")
    assert json.loads((env / MARKER).read_text())["resolved"] == "today, after resolving as of its era failed"
