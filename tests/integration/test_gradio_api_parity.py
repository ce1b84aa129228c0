"""A Space's API through the platform is the API of the same app run directly (`python app.py`, as its author
runs it): the same named endpoints with the same parameters and returns, and the same answers. Gradio changes
an app's API when it believes it runs on huggingface.co (SYSTEM=spaces): it adds a deep-link event whose lambda
takes the name `/lambda`, so the app's own lambda handler becomes `/lambda_1`. A healthy app's run log is clean
(no `spaces package is required` traceback from Gradio's Spaces reloader)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from polling import wait_answering

from spaces_harness import Platform, free_port, gradio_readme, write_app

pytestmark = pytest.mark.slow
GRADIO = "6.31.0"
APP = """\
import gradio as gr

demo = gr.Interface(fn=lambda text, times: " ".join([text.upper()] * int(times)),
                    inputs=[gr.Textbox(label="text"), gr.Number(label="times", value=2)],
                    outputs=gr.Textbox(label="shout"))
demo.launch()
"""
CALLS = [("hello", 2), ("lambda", 3)]


def _venv(folder: Path) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH; install it with `pip install uv`")
    env = {**os.environ, "VIRTUAL_ENV": str(folder)}
    for step in ([uv, "venv", "-q", "-p", "3.11", str(folder)], [uv, "pip", "install", "-q", f"gradio=={GRADIO}"]):
        subprocess.run(step, env=env, capture_output=True, text=True, timeout=600, check=True)
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("lambda") / "app",
                     {"README.md": gradio_readme("Lambda", GRADIO), "app.py": APP})


@pytest.fixture(scope="module")
def direct(app_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as its author runs it: its own virtualenv, `python app.py`, nothing of the platform around it."""
    python = _venv(tmp_path_factory.mktemp("venv") / "gradio")
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(app_folder), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = app_folder.parent / "direct.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(python), "app.py"], cwd=app_folder, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_answering(process, url + "config", log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@pytest.fixture(scope="module")
def hosted(app_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    """The same folder deployed to a real `spaces serve` (runner on: the app gets the kit and the `spaces` shim)."""
    platform = Platform(tmp_path_factory.mktemp("platform") / "data").start(timeout=120)
    try:
        platform.cli("deploy", str(app_folder), "--name", "tests/lambda", check=True)
        yield platform, f"{platform.url}/spaces/tests/lambda/"
    finally:
        platform.stop()


def _api(url: str) -> dict[str, Any]:
    """/gradio_api/info without its code snippets (those quote the URL the app was reached at)."""
    info = httpx.get(url + "gradio_api/info", timeout=30)
    info.raise_for_status()
    api: dict[str, Any] = info.json()
    for kind in ("named_endpoints", "unnamed_endpoints"):
        api[kind] = {name: {k: v for k, v in about.items() if k != "code_snippets"}
                     for name, about in api[kind].items()}
    return api


def _answers(url: str, endpoints: list[str]) -> dict[str, list[Any]]:
    client = Client(url, verbose=False)
    return {name: [client.predict(*args, api_name=name) for args in CALLS] for name in endpoints}


def test_the_hosted_app_has_the_named_endpoints_of_a_direct_run(direct: str, hosted: tuple[Platform, str]) -> None:
    alone, platform_api = _api(direct), _api(hosted[1])
    assert list(alone["named_endpoints"]) == ["/lambda"]  # what the app's author sees and documents
    assert platform_api["named_endpoints"] == alone["named_endpoints"]  # names, parameters, returns
    assert platform_api["unnamed_endpoints"] == alone["unnamed_endpoints"]
    assert Client(hosted[1], verbose=False).view_api(print_info=False, return_format="dict") == \
        Client(direct, verbose=False).view_api(print_info=False, return_format="dict")


def test_the_hosted_app_answers_as_a_direct_run(direct: str, hosted: tuple[Platform, str]) -> None:
    expected = _answers(direct, ["/lambda"])
    assert expected == {"/lambda": ["HELLO HELLO", "LAMBDA LAMBDA LAMBDA"]}
    assert _answers(hosted[1], ["/lambda"]) == expected


def test_a_healthy_apps_run_log_has_no_traceback(hosted: tuple[Platform, str]) -> None:
    platform, url = hosted
    assert httpx.get(url, timeout=30).status_code == 200
    log = httpx.get(f"{platform.url}/api/spaces/tests/lambda/logs/run", params={"follow": "0"}, timeout=30).text
    assert "Running on local URL" in log  # the app's own output is there
    assert "spaces package is required" not in log and "Traceback" not in log, log
    assert "transpile" not in log  # Gradio's huggingface.co-only deep-link event is not added
