"""Streamlit's toolbar in hosted apps: viewer mode through the environment, for every Streamlit era (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime import sdk_eras
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.launch import process_command


@pytest.mark.parametrize("version", ["1.17.0", "1.25.0", "1.67.0", None])
def test_every_streamlit_app_gets_the_viewer_toolbar_and_no_flag_an_old_streamlit_refuses(version: str | None) -> None:
    spec = LaunchSpec(space_id="a/b", sdk="streamlit", sdk_version=version, app_dir=Path("/apps/a/b"),
                      app_file="app.py", base_path="/spaces/a/b")
    argv, env = process_command(spec, 8000, Path("/envs/x/bin/python"))
    assert env["STREAMLIT_CLIENT_TOOLBAR_MODE"] == "viewer"
    assert not any("toolbarMode" in arg for arg in argv)  # 1.17's `streamlit run` exits on an unknown flag
    assert sdk_eras.image_env("streamlit", version)["STREAMLIT_CLIENT_TOOLBAR_MODE"] == "viewer"  # docker images


def test_gradio_apps_get_no_streamlit_setting() -> None:
    spec = LaunchSpec(space_id="a/b", sdk="gradio", app_dir=Path("/apps/a/b"), app_file="app.py",
                      base_path="/spaces/a/b")
    _, env = process_command(spec, 8000, Path("/envs/x/bin/python"))
    assert not any(key.startswith("STREAMLIT_") for key in env)
    assert "STREAMLIT_CLIENT_TOOLBAR_MODE" not in sdk_eras.image_env("gradio", None)
