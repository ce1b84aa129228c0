"""Dockerfiles, tags and build secrets are pure decisions: golden files pin what a user's image is made of.

Regenerate the golden files after an intended template change with ``UPDATE_GOLDEN=1 pytest tests/unit``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.docker import progress, render
from builder.docker.render import AppImage, BroughtPython, SdkImage
from builder.plan import BuildPlan
from spaces_runtime.errors import BuildError

GOLDEN = Path(__file__).parent / "golden"
SDK = "spaces-runtime/sdk:gradio-6.31.0-py3.11-0123456789ab"

CASES = {
    "sdk-gradio.Dockerfile": lambda: render.render_sdk_dockerfile(
        SdkImage("python:3.11-slim", "gradio", "6.31.0", "3.11")),
    "sdk-gradio-py3.9.Dockerfile": lambda: render.render_sdk_dockerfile(SdkImage(
        "spaces-runtime/base:bookworm-py3.11", "gradio", "4.44.0", "3.9", exclude_newer="2024-09-06T00:00:00Z",
        brought=BroughtPython("/root/.pyenv/versions/3.9.18", "3.9.18", "/root/.pyenv/versions"))),
    "sdk-static.Dockerfile": lambda: render.render_sdk_dockerfile(
        SdkImage("spaces-runtime/base:bookworm-py3.11", "static", None, "3.11")),
    "gradio-full.Dockerfile": lambda: render.render_dockerfile(AppImage(
        "gradio", SDK, "app.py", apt_packages=("ffmpeg", "libgl1"), pre_requirements=("numpy<2",),
        requirements=("gradio==6.31.0", "pandas"))),
    "streamlit.Dockerfile": lambda: render.render_dockerfile(AppImage(
        "streamlit", "spaces-runtime/sdk:streamlit-1.67.0-py3.11-0123456789ab", "src/main app.py",
        requirements=("streamlit==1.67.0",))),
    "static.Dockerfile": lambda: render.render_dockerfile(AppImage("static", SDK, "site/index.html")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_dockerfile_matches_golden_file(name: str) -> None:
    rendered = CASES[name]()
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_layers_go_from_costly_to_cheap_with_code_last() -> None:
    text = CASES["gradio-full.Dockerfile"]()
    order = ["FROM ", "apt-get install", "pre-requirements.txt", "/tmp/requirements.txt", "COPY", "CMD"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_app_runs_as_uid_1000_in_home_user_app_on_port_7860() -> None:
    sdk = CASES["sdk-gradio.Dockerfile"]()
    assert "USER 1000:1000" in sdk and "WORKDIR /home/user/app" in sdk and "EXPOSE 7860" in sdk
    assert "GRADIO_SERVER_NAME=0.0.0.0" in sdk
    # Gradio reads SYSTEM=spaces as "on huggingface.co": it adds HF-only buttons and renames lambda endpoints
    assert "SYSTEM=spaces" not in sdk


def test_secrets_are_mounted_never_copied() -> None:
    for name in CASES:
        text = CASES[name]()
        assert "ca_bundle" not in text.replace("id=ca_bundle", "")
        assert "ARG " not in text and "COPY .spaces" not in text


def test_app_file_with_spaces_is_quoted_in_cmd() -> None:
    assert 'CMD ["streamlit", "run", "src/main app.py"]' in CASES["streamlit.Dockerfile"]()
    assert '"--directory", "/home/user/app/site"]' in CASES["static.Dockerfile"]()


def test_packages_txt_refuses_shell_and_names_the_line() -> None:
    with pytest.raises(BuildError, match=r"packages.txt line 3: 'ffmpeg; rm -rf /' is not a Debian package"):
        render.check_packages(["libgl1", "curl=7.88.1-10", "ffmpeg; rm -rf /"], [1, 2, 3])


def test_docker_sdk_has_no_template() -> None:
    with pytest.raises(BuildError, match="own Dockerfile"):
        render.render_dockerfile(AppImage("docker", SDK, "Dockerfile"))


def _plan(**changes: object) -> BuildPlan:
    fields: dict[str, object] = dict(sdk="gradio", sdk_version="6.31.0", python_version="3.11",
                                     requirements=["gradio==6.31.0"], pre_requirements=[], env_hash="e" * 64,
                                     needs_env=True, app_file="app.py", app_port=7860)
    fields.update(changes)
    return BuildPlan(**fields)  # type: ignore[arg-type]


def test_code_change_keeps_the_env_part_of_the_tag() -> None:
    app = render.app_image_for(_plan(), [], SDK)
    dockerfile = render.render_dockerfile(app)
    one = render.app_tag("e" * 64, "sha256:sdk", (), dockerfile, "c" * 64)
    two = render.app_tag("e" * 64, "sha256:sdk", (), dockerfile, "d" * 64)
    three = render.app_tag("f" * 64, "sha256:sdk", (), dockerfile, "c" * 64)
    assert one.split("-")[0] == two.split("-")[0] and one != two
    assert one.split(":")[1].split("-")[0] != three.split(":")[1].split("-")[0]
    assert render.app_tag("e" * 64, "sha256:sdk", ("ffmpeg",), dockerfile, "c" * 64) != one


def test_sdk_tag_is_shared_per_version_and_base() -> None:
    image = SdkImage("python:3.11-slim", "gradio", "6.31.0", "3.11")
    tag = render.sdk_tag(image, "sha256:base")
    assert tag.startswith("spaces-runtime/sdk:gradio-6.31.0-py3.11-")
    assert render.sdk_tag(image, "sha256:base") == tag != render.sdk_tag(image, "sha256:other")


def test_build_env_carries_ca_and_indexes_quoted() -> None:
    text = render.build_env(True, "https://user:tok en@pypi.example/simple", None)
    assert "SSL_CERT_FILE=/run/secrets/ca_bundle" in text and "PIP_CERT=/run/secrets/ca_bundle" in text
    assert "UV_INDEX_URL='https://user:tok en@pypi.example/simple'" in text
    assert render.build_env(False, None, None).strip().startswith(":")  # sourcing an empty file is fine


STEP = ("[stage-0 3/5] RUN --mount=type=secret,id=build_env,uid=1000 "
        "--mount=type=bind,source=.spaces/requirements.txt,target=/tmp/requirements.txt     "
        "set -a && . /run/secrets/build_env && set +a  && UV_LINK_MODE=copy uv pip install -r /tmp/requirements.txt")
PLAIN_FAILURE = f"""\
#7 {STEP}
#7 sha256:abc
#7 0.412 Using Python 3.11.2 environment at: /home/user/.venv
#7 0.901   error: No solution found when resolving dependencies:
#7 0.901   Because nope was not found in the package registry
#7 ERROR: executor failed running [/bin/sh -c set -a]: exit code: 1
------
 > [stage-0 3/5] RUN ...:
------
error: failed to solve: executor failed running [/bin/sh -c set -a]: exit code: 1
"""


def test_failed_step_is_named_with_its_output() -> None:
    error = progress.failure(PLAIN_FAILURE.splitlines(), 1)
    assert "step 'RUN uv pip install -r /tmp/requirements.txt'" in str(error)
    assert "exit code: 1" in str(error)
    assert "nope was not found" in error.log_tail and "sha256" not in error.log_tail


def test_failure_without_steps_keeps_the_final_error() -> None:
    error = progress.failure(["error: failed to solve: base image not found"], 1)
    assert "failed to solve: base image not found" in str(error)


def test_cached_steps_are_recognised() -> None:
    steps = progress.parse(["#5 [2/4] RUN echo", "#5 CACHED", "#6 [3/4] COPY app/ .", "#6 DONE 0.1s"])
    assert steps[5].cached and not steps[6].cached


def test_a_python_the_base_lacks_is_copied_in_and_makes_the_venv() -> None:
    text = CASES["sdk-gradio-py3.9.Dockerfile"]()
    assert "COPY python/ /opt/python/3.9.18/" in text
    assert '/opt/python/3.9.18/bin/python3.9 -m venv "$VIRTUAL_ENV"' in text
    assert text.index("COPY python/") < text.index("-m venv")
    assert "/root/.pyenv" not in text  # the host's path stays out of the image and its tag
    default = CASES["sdk-gradio.Dockerfile"]()
    assert "COPY python/" not in default and 'python3 -m venv "$VIRTUAL_ENV"' in default
