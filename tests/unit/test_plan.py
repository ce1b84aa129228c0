"""builder.plan: AppSpec → BuildPlan (SDK pin, env hash) and the code hash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from builder.plan import make
from builder.spec import AppSpec
from spaces_runtime.appfiles import code_hash
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError

SETTINGS = Settings(data_dir=Path("/nonexistent"), backend="process",
                    default_gradio_version="6.31.0", default_streamlit_version="1.67.0", python_version="3.11")


def app(sdk: str = "gradio", requirements: list[str] | None = None, **fields: object) -> AppSpec:
    requirements = requirements or []
    base = AppSpec(folder=Path("/app"), title="T", sdk=sdk, app_file="app.py", requirements=requirements,
                   requirement_lines=list(range(1, len(requirements) + 1)))
    return replace(base, **fields)  # type: ignore[arg-type]


def test_default_sdk_version_is_pinned_first() -> None:
    plan = make(app(requirements=["numpy"]), SETTINGS)
    assert plan.requirements == ["gradio==6.31.0", "numpy"]
    assert (plan.sdk, plan.sdk_version, plan.python_version, plan.needs_env) == ("gradio", "6.31.0", "3.11", True)
    assert plan.origins == {"numpy": "requirements.txt line 1", "gradio==6.31.0": "the platform's default SDK version"}


def test_sdk_version_overrides_a_pin_in_requirements_and_keeps_extras() -> None:
    spec = app(requirements=["numpy", "Gradio[oauth]==4.0", "gradio[mcp]"], sdk_version="5.9.1")
    plan = make(spec, SETTINGS)
    assert plan.requirements == ["gradio[mcp,oauth]==5.9.1", "numpy"]
    assert plan.notes == [
        "requirements.txt line 2: 'Gradio[oauth]==4.0' is replaced by gradio==5.9.1 (set the version with "
        "sdk_version in README.md)",
        "requirements.txt line 3: 'gradio[mcp]' is replaced by gradio==5.9.1 (set the version with "
        "sdk_version in README.md)",
    ]
    assert plan.origins["gradio[mcp,oauth]==5.9.1"] == "sdk_version in README.md"


def test_streamlit_uses_its_own_default_and_python_version_from_readme() -> None:
    plan = make(app(sdk="streamlit", python_version="3.12"), SETTINGS)
    assert plan.requirements == ["streamlit==1.67.0"] and plan.python_version == "3.12"


def test_static_needs_no_environment() -> None:
    plan = make(app(sdk="static", app_file="index.html", requirements=["numpy"]), SETTINGS)
    assert not plan.needs_env and plan.requirements == [] and plan.sdk_version is None
    assert plan.steps == ["serve index.html and the folder's files as a static site"]
    assert "ignored" in plan.notes[0]


def test_docker_sdk_on_the_process_backend_says_use_docker() -> None:
    with pytest.raises(BuildError, match="--backend docker"):
        make(app(sdk="docker", app_file="Dockerfile"), SETTINGS)
    plan = make(app(sdk="docker", app_file="Dockerfile"), SETTINGS.model_copy(update={"backend": "docker"}))
    assert plan.sdk == "docker" and not plan.needs_env


def test_packages_txt_on_the_process_backend_is_an_error_not_ignored() -> None:
    spec = app(packages=["ffmpeg", "libsndfile1"], package_lines=[2, 3])
    with pytest.raises(BuildError) as caught:
        make(spec, SETTINGS)
    assert str(caught.value).startswith("packages.txt line 2: Debian packages (ffmpeg, libsndfile1) can only "
                                        "be installed in a container; start the platform with "
                                        "`spaces serve --backend docker`")
    assert make(spec, SETTINGS.model_copy(update={"backend": "docker"})).sdk == "gradio"


def test_steps_describe_the_build() -> None:
    plan = make(app(requirements=["numpy"], pre_requirements=["pip"], pre_requirement_lines=[1]), SETTINGS)
    assert plan.steps == [
        f"create a Python 3.11 virtualenv with uv (env {plan.env_hash[:12]})",
        "install 1 pre-requirement(s) from pre-requirements.txt",
        "install gradio==6.31.0 and 1 requirement(s) from requirements.txt",
        "start app.py with gradio",
    ]


def test_env_hash_is_stable_and_ignores_spelling_order_and_code() -> None:
    first = make(app(requirements=["numpy >= 1.26", "Six"]), SETTINGS).env_hash
    assert len(first) == 64
    assert make(app(requirements=["six", "numpy>=1.26"]), SETTINGS).env_hash == first
    assert make(app(requirements=["numpy>=1.26", "six"], app_file="main.py", title="Other",
                    folder=Path("/elsewhere")), SETTINGS).env_hash == first


@pytest.mark.parametrize("change", [
    {"requirements": ["numpy>=1.27", "six"]},
    {"python_version": "3.12"},
    {"sdk_version": "6.30.0"},
    {"sdk": "streamlit"},
    {"pre_requirements": ["pip"], "pre_requirement_lines": [1]},
])
def test_env_hash_changes_with_what_goes_into_the_env(change: dict[str, object]) -> None:
    base = app(requirements=["numpy>=1.26", "six"])
    assert make(replace(base, **change), SETTINGS).env_hash != make(base, SETTINGS).env_hash  # type: ignore[arg-type]


def test_env_hash_changes_with_index_and_platform_defaults() -> None:
    base = make(app(), SETTINGS).env_hash
    assert make(app(), SETTINGS.model_copy(update={"index_url": "https://mirror/simple"})).env_hash != base
    assert make(app(), SETTINGS.model_copy(update={"default_gradio_version": "6.0.0"})).env_hash != base


def test_code_hash_follows_files_not_caches(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x.py").write_text("X = 1\n")
    first = code_hash(tmp_path)
    for ignored in (".git", "__pycache__", ".venv", "lib/__pycache__"):
        (tmp_path / ignored).mkdir(exist_ok=True)
        (tmp_path / ignored / "junk").write_text("changes all the time")
    assert code_hash(tmp_path) == first
    (tmp_path / "lib" / "x.py").write_text("X = 2\n")
    assert code_hash(tmp_path) != first
    (tmp_path / "lib" / "x.py").write_text("X = 1\n")
    assert code_hash(tmp_path) == first
    (tmp_path / "lib" / "x.py").rename(tmp_path / "lib" / "y.py")
    assert code_hash(tmp_path) != first
