"""spaces_runtime.sdk_eras: per-version probes, stream paths, flags and env, and their use by the supervisor."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime import sdk_eras
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.launch import process_command
from spaces_runtime.supervisor.probes import readiness_url


def launch(sdk: str, version: str | None) -> LaunchSpec:
    return LaunchSpec(space_id="a/b", sdk=sdk, sdk_version=version, app_dir=Path("/apps/a/b"), app_file="app.py",
                      base_path="/spaces/a/b")


@pytest.mark.parametrize(("version", "key"), [
    ("4.44.0", (4, 44, 0)), ("1.17", (1, 17)), ("5.0.0b3", (5, 0, 0)), ("6.31.0.post1", (6, 31, 0)), ("7", (7,)),
])
def test_version_key_reads_release_numbers(version: str, key: tuple[int, ...]) -> None:
    assert sdk_eras.version_key(version) == key


@pytest.mark.parametrize(("version", "health", "stream"), [
    ("1.16.0", "healthz", "stream"),
    ("1.17.0", "healthz", "stream"),
    ("1.17.99", "healthz", "stream"),
    ("1.18.0", "_stcore/health", "_stcore/stream"),
    ("1.25.0", "_stcore/health", "_stcore/stream"),
    ("1.67.0", "_stcore/health", "_stcore/stream"),
    (None, "_stcore/health", "_stcore/stream"),
])
def test_streamlit_moved_health_and_stream_under_stcore_in_1_18(version: str | None, health: str,
                                                                  stream: str) -> None:
    assert sdk_eras.health_path("streamlit", version) == health
    assert sdk_eras.stream_path(version) == stream


def test_the_readiness_probe_asks_the_path_of_the_apps_streamlit() -> None:
    upstream = "http://127.0.0.1:4000"
    assert readiness_url(launch("streamlit", "1.17.0"), upstream) == f"{upstream}/spaces/a/b/healthz"
    assert readiness_url(launch("streamlit", "1.25.0"), upstream) == f"{upstream}/spaces/a/b/_stcore/health"
    assert readiness_url(launch("streamlit", None), upstream) == f"{upstream}/spaces/a/b/_stcore/health"
    assert readiness_url(launch("gradio", "4.44.0"), upstream) == f"{upstream}/spaces/a/b/config"


@pytest.mark.parametrize(("version", "ssr"), [("3.50.2", False), ("4.44.0", False), ("5.0.0", True),
                                              ("5.9.1", True), ("6.31.0", True), (None, True)])
def test_gradio_gets_ssr_off_only_where_it_has_ssr(version: str | None, ssr: bool) -> None:
    env = sdk_eras.gradio_env(version, host="127.0.0.1", port=4001, root_path="/spaces/a/b/")
    assert env["GRADIO_SERVER_PORT"] == "4001" and env["GRADIO_ROOT_PATH"] == "/spaces/a/b"
    assert ("GRADIO_SSR_MODE" in env) is ssr
    assert env.get("GRADIO_SSR_MODE", "false") == "false"


def test_gradio_flagging_variable_was_renamed_in_5() -> None:
    assert sdk_eras.era("gradio", "4.44.0").flagging_env == "GRADIO_ALLOW_FLAGGING"
    assert sdk_eras.era("gradio", "5.9.1").flagging_env == "GRADIO_FLAGGING_MODE"
    assert sdk_eras.era("gradio", "3.50.2").queue == "websocket" and sdk_eras.era("gradio", "4.0").queue == "sse"


def test_process_command_uses_the_era_of_the_app() -> None:
    _, env = process_command(launch("gradio", "4.44.0"), 4002, Path("/envs/x/bin/python"))
    assert env["GRADIO_SERVER_PORT"] == "4002" and "GRADIO_SSR_MODE" not in env
    argv, _ = process_command(launch("streamlit", "1.17.0"), 4003, Path("/envs/x/bin/python"))
    assert argv[:5] == ["/envs/x/bin/python", "-m", "streamlit", "run", "app.py"]
    assert argv[argv.index("--server.baseUrlPath") + 1] == "spaces/a/b"
    assert argv[argv.index("--server.port") + 1] == "4003"


def test_every_sdk_has_a_first_era_and_rows_are_in_order() -> None:
    for sdk in ("gradio", "streamlit"):
        rows = [row for row in sdk_eras.ERAS if row.sdk == sdk]
        assert rows[0].since == "0"
        keys = [sdk_eras.version_key(row.since) for row in rows]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
    with pytest.raises(ValueError, match="docker"):
        sdk_eras.era("docker", None)


def test_sdk_images_carry_the_environment_of_their_era() -> None:
    from builder.docker import render
    from builder.docker.render import SdkImage

    gradio4 = render.render_sdk_dockerfile(SdkImage("base", "gradio", "4.44.0", "3.11"))
    gradio6 = render.render_sdk_dockerfile(SdkImage("base", "gradio", "6.31.0", "3.11"))
    streamlit = render.render_sdk_dockerfile(SdkImage("base", "streamlit", "1.17.0", "3.11"))
    assert "GRADIO_ALLOW_FLAGGING=never" in gradio4 and "GRADIO_SSR_MODE" not in gradio4
    assert "GRADIO_FLAGGING_MODE=never" in gradio6 and "GRADIO_SSR_MODE=false" in gradio6
    assert "STREAMLIT_SERVER_PORT=7860" in streamlit and "GRADIO_" not in streamlit
