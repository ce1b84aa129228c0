"""The core platform end to end: a real `spaces serve`, real example apps, reached only through the gateway."""

from __future__ import annotations

import io
import os
import signal
import tarfile
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from polling import wait_until

from example_checks import (
    CORE_EXAMPLES,
    check_audio_lab,
    check_image_filters,
    check_sentiment,
    check_streamlit_script_runs,
)
from spaces_harness import Platform, gradio_readme, serving_examples, write_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    with serving_examples(tmp_path_factory.mktemp("platform"), CORE_EXAMPLES,
                          env={"SPACES_RUNNER_ENABLED": "false"}) as server:
        yield server


def test_every_example_runs_and_the_cli_lists_it(platform: Platform) -> None:
    listed = platform.cli("list", "--json", check=True)
    stages = {s["id"]: s["stage"] for s in __import__("json").loads(listed.stdout)}
    assert stages == {f"examples/{name}": "RUNNING" for name in CORE_EXAMPLES}


def test_gradio_text_app_answers_through_the_gateway(platform: Platform) -> None:
    check_sentiment(platform.example_url("sentiment"))


def test_gradio_image_app_takes_an_upload_through_the_gateway(platform: Platform, tmp_path: Path) -> None:
    check_image_filters(platform.example_url("image-filters"), tmp_path)


def test_gradio_audio_app_measures_an_uploaded_wav(platform: Platform, tmp_path: Path) -> None:
    check_audio_lab(platform.example_url("audio-lab"), tmp_path)


def test_host_form_link_serves_the_same_app(platform: Platform) -> None:
    host = f"examples-sentiment.localhost:{platform.port}"
    response = httpx.get(f"{platform.url}/config", headers={"Host": host}, timeout=10)
    assert response.status_code == 200
    assert "components" in response.json()


def test_streamlit_websocket_runs_the_script(platform: Platform) -> None:
    check_streamlit_script_runs(platform.example_url("data-explorer"))


def test_killed_app_comes_back(platform: Platform) -> None:
    before = platform.space("examples/sentiment")["runtime"]
    os.kill(int(before["backend_ref"]), signal.SIGKILL)

    def came_back() -> bool:
        space = platform.space("examples/sentiment")
        runtime = space.get("runtime") or {}
        return space["stage"] == "RUNNING" and runtime.get("backend_ref") not in (None, before["backend_ref"])

    wait_until(came_back, 120, "the killed app to run again in a new process", interval=0.5)
    client = Client(platform.example_url("sentiment"), verbose=False)
    assert client.predict("bad awful", 3, api_name="/analyze")[0]["label"].lower().startswith("neg")
    events = httpx.get(f"{platform.url}/api/spaces/examples/sentiment/events").json()
    assert any(e["stage"] == "APP_STARTING" and "SIGKILL" in e["reason"] for e in events), events


def test_app_raising_at_import_ends_in_runtime_error(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "broken", {
        "README.md": gradio_readme("Broken"),
        "app.py": "import gradio as gr\nraise ValueError('the model file is missing: weights.bin')\n",
    })
    result = platform.cli("deploy", str(folder), "--name", "tests/broken", timeout=600)
    assert result.returncode != 0
    assert "RUNTIME_ERROR" in result.stderr
    space = platform.space("tests/broken")
    assert space["stage"] == "RUNTIME_ERROR"
    assert "ValueError: the model file is missing: weights.bin" in space["error"]
    logs = platform.cli("logs", "tests/broken", check=True)
    assert "ValueError: the model file is missing: weights.bin" in logs.stdout


def test_deploy_prints_the_link_and_a_redeploy_keeps_it(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "hello", {
        "README.md": gradio_readme("Hello"),
        "app.py": "import gradio as gr\n"
                  "gr.Interface(lambda s: 'v1 ' + s, 'text', 'text', api_name='greet').launch()\n",
    })
    first = platform.cli("deploy", str(folder), "--name", "tests/hello", check=True)
    assert f"http://localhost:{platform.port}/spaces/tests/hello/" in first.stdout
    url = f"{platform.url}/spaces/tests/hello/"
    assert Client(url, verbose=False).predict("x", api_name="/greet") == "v1 x"
    (folder / "app.py").write_text((folder / "app.py").read_text().replace("v1", "v2"))
    second = platform.cli("deploy", str(folder), "--name", "tests/hello", check=True)
    assert f"http://localhost:{platform.port}/spaces/tests/hello/" in second.stdout
    assert Client(url, verbose=False).predict("x", api_name="/greet") == "v2 x"


def test_bad_readme_is_a_config_error_with_file_and_line(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "typo", {"README.md": "---\ntitle: Typo\nsdk: gradoi\n---\n", "app.py": "x = 1\n"})
    result = platform.cli("deploy", str(folder), "--name", "tests/typo")
    assert result.returncode != 0
    assert "README.md line 3" in result.stderr and "gradoi" in result.stderr
    assert "Traceback" not in result.stderr
    assert platform.space("tests/typo")["stage"] == "CONFIG_ERROR"


def test_missing_app_file_is_no_app_file(platform: Platform, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "noapp", {"README.md": gradio_readme("No app").replace("app.py", "main.py")})
    result = platform.cli("deploy", str(folder), "--name", "tests/noapp")
    assert result.returncode != 0
    assert platform.space("tests/noapp")["stage"] == "NO_APP_FILE"


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(("body", "status", "message"), [
    (tar_bytes([(tarfile.TarInfo("../../escape.py"), b"x")]), 400, "outside the app folder"),
    (tar_bytes([(tarfile.TarInfo("/tmp/abs.py"), b"x")]), 400, "absolute path"),
    (tar_bytes([(symlink("link", "/etc/passwd"), None)]), 400, "symlink"),
    (b"definitely not a tarball", 400, "not a readable gzip'd tar"),
    (b"", 400, "empty"),
])
def test_hostile_uploads_are_refused_and_the_server_lives(platform: Platform, body: bytes, status: int,
                                                          message: str) -> None:
    response = httpx.put(f"{platform.url}/api/spaces/tests/hostile", content=body, timeout=30, headers=platform.auth)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert not (platform.data_dir.parent / "escape.py").exists()
    assert httpx.get(f"{platform.url}/api/health").status_code == 200


@pytest.mark.parametrize("name", ["Bad_Upper", "-dash", "a" * 97])
def test_bad_names_are_refused(platform: Platform, name: str) -> None:
    response = httpx.put(f"{platform.url}/api/spaces/tests/{name}", content=b"x", timeout=30, headers=platform.auth)
    assert response.status_code == 400
    assert "not allowed" in response.json()["message"]


def test_unknown_app_link_is_a_clear_404(platform: Platform) -> None:
    response = httpx.get(f"{platform.url}/spaces/nobody/nothing/")
    assert response.status_code == 404
    assert "nobody/nothing" in response.text


def test_restarted_platform_brings_running_apps_back(platform: Platform) -> None:
    running = {s["id"] for s in httpx.get(f"{platform.url}/api/spaces").json() if s["stage"] == "RUNNING"}
    assert {f"examples/{n}" for n in CORE_EXAMPLES} <= running
    platform.stop()
    platform.start()
    for space_id in running:
        platform.wait_for(space_id, timeout=300)
    assert Client(platform.example_url("sentiment"), verbose=False).predict("great", 3, api_name="/analyze")


def test_a_killed_platform_leaves_no_orphans_and_comes_back(platform: Platform) -> None:
    pid = int(platform.space("examples/sentiment")["runtime"]["backend_ref"])
    platform.stop(signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the app to end with the platform that started it",
               interval=0.2)
    platform.start()
    space = platform.wait_for("examples/sentiment", timeout=300)
    assert int(space["runtime"]["backend_ref"]) != pid
    assert Client(platform.example_url("sentiment"), verbose=False).predict("great", 3, api_name="/analyze")
