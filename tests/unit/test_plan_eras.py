"""Era-true resolution in the plan (pure): which apps are resolved as of their SDK's release, and the env hash;
and reading release dates out of an index's JSON simple API."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from builder.plan import make
from builder.releases import file_version, upload_time
from builder.spec import AppSpec
from spaces_runtime.config import Settings

SETTINGS = Settings(data_dir=Path("/nonexistent"), default_gradio_version="6.31.0",
                    default_streamlit_version="1.67.0", python_version="3.11")


def app(sdk: str = "gradio", **fields: object) -> AppSpec:
    return replace(AppSpec(folder=Path("/app"), title="T", sdk=sdk, app_file="app.py"), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("sdk", "version"), [("gradio", "4.44.0"), ("gradio", "5.9.1"), ("streamlit", "1.17.0"),
                                              ("gradio", "6.30.0")])
def test_an_sdk_older_than_the_platforms_is_resolved_as_of_its_release(sdk: str, version: str) -> None:
    plan = make(app(sdk, sdk_version=version), SETTINGS)
    assert plan.era is not None and (plan.era.package, plan.era.version) == (sdk, version)
    assert f"sdk_version {version} in README.md is older than the platform's {sdk}" in plan.era.reason
    assert any(step.startswith(f"resolve as of {sdk} {version}'s release") for step in plan.steps)


@pytest.mark.parametrize("fields", [{}, {"sdk_version": "6.31.0"}, {"sdk_version": "7.0.0"}])
def test_the_platforms_sdk_or_a_newer_one_resolves_as_of_today(fields: dict[str, str]) -> None:
    assert make(app(**fields), SETTINGS).era is None


def test_the_operator_can_turn_era_resolution_off_and_the_hash_follows_the_rule() -> None:
    spec = app(sdk_version="4.44.0")
    dated = make(spec, SETTINGS)
    today = make(spec, SETTINGS.model_copy(update={"era_resolution": False}))
    assert today.era is None and today.env_hash != dated.env_hash
    assert make(spec, SETTINGS).env_hash == dated.env_hash


def test_python_origin_names_the_readme_or_the_platform_default() -> None:
    assert make(app(python_version="3.12"), SETTINGS).python_origin == "set in README.md"
    default = make(app(), SETTINGS)
    assert default.python_version == "3.11"
    assert default.python_origin == ("the platform's default (README.md sets no python_version; Hugging Face's "
                                     "default is 3.10)")


def test_file_versions_and_the_earliest_upload_of_a_version() -> None:
    assert file_version("gradio-4.44.0-py3-none-any.whl") == "4.44.0"
    assert file_version("gradio_client-1.3.0.tar.gz") == "1.3.0"
    assert file_version("README") is None
    files = [
        {"filename": "gradio-4.44.0.tar.gz", "upload-time": "2024-09-10T21:46:28.275401Z"},
        {"filename": "gradio-4.44.0-py3-none-any.whl", "upload-time": "2024-09-10T21:46:23.568814Z"},
        {"filename": "gradio-4.44.1-py3-none-any.whl", "upload-time": "2024-09-30T00:00:00Z"},
        {"filename": "gradio-4.43.0-py3-none-any.whl"},
    ]
    assert upload_time(files, "4.44.0") == datetime(2024, 9, 10, 21, 46, 23, 568814, tzinfo=UTC)
    assert upload_time(files, "4.43.0") is None and upload_time(files, "9.9") is None


def test_docker_images_resolve_as_of_the_same_date() -> None:
    from builder.docker import render

    plan = make(app(sdk_version="4.44.0", requirements=["huggingface_hub"], requirement_lines=[1]),
                SETTINGS.model_copy(update={"backend": "docker"}))
    sdk = render.render_sdk_dockerfile(render.sdk_image_for(plan, "base", "2024-09-11T21:46:23Z"))
    image = render.render_dockerfile(render.app_image_for(plan, [], "sdk", exclude_newer="2024-09-11T21:46:23Z"))
    assert 'uv pip install --exclude-newer 2024-09-11T21:46:23Z "gradio==4.44.0"' in sdk
    assert "uv pip install --exclude-newer 2024-09-11T21:46:23Z -r /tmp/requirements.txt" in image
    today = render.render_sdk_dockerfile(render.sdk_image_for(plan, "base"))
    assert "--exclude-newer" not in today
