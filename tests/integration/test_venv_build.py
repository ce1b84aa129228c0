"""VenvBuilder with real uv: a gradio environment that runs, is reused, is built once under concurrency, and
fails with a message that names the requirements.txt line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from polling import wait_until
from prerequisites import missing

from builder import plan as build_plan
from builder import spec as app_spec
from builder.plan import BuildPlan
from builder.venv import MARKER, VenvBuilder, find_uv, python_in
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError, SpacesError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def need_uv() -> None:
    try:
        find_uv()
    except SpacesError:
        missing("uv is needed to build environments and is not installed")


def gradio_app(root: Path, requirements: str = "", front: str = "sdk: gradio\n") -> Path:
    folder = root / "app"
    folder.mkdir()
    (folder / "README.md").write_text(f"---\n{front}---\n")
    (folder / "app.py").write_text("import gradio as gr\n")
    (folder / "requirements.txt").write_text(requirements)
    return folder


def planned(folder: Path, settings: Settings) -> BuildPlan:
    return build_plan.make(app_spec.load(folder), settings)


class Log(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def test_gradio_env_builds_runs_and_is_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    plan = planned(gradio_app(tmp_path, "six\n"), settings)
    builder = VenvBuilder(settings.envs_dir, settings)
    log = Log()
    env = builder.build(plan, log)
    assert env == settings.envs_dir / plan.env_hash and (env / MARKER).is_file()
    assert any("Installed" in line for line in log), "uv's own output is streamed to the log"
    # metadata rather than `import gradio`, which alone takes seconds; the app tests import it for real
    check = subprocess.run([python_in(env), "-c", "import six; from importlib.metadata import version; "
                            "print(version('gradio'))"], capture_output=True, text=True, check=True)
    assert check.stdout.strip() == settings.default_gradio_version
    # console scripts still work although the env was built under a temporary name and renamed
    scripted = subprocess.run([env / "bin" / "uvicorn", "--version"], capture_output=True, text=True)
    assert scripted.returncode == 0 and "uvicorn" in scripted.stdout
    # the bytecode a sandboxed app cannot write into its read-only environment is written for it, after the build
    site = next(env.glob("lib/python*/site-packages"))
    wait_until(lambda: any((site / "gradio" / "__pycache__").glob("blocks.*.pyc")), 300,
               "gradio's bytecode compiled in the background")
    again = Log()
    assert builder.build(plan, again) == env
    assert again == [f"==> reusing environment {plan.env_hash[:12]} (built before)"]
    assert [p.name for p in settings.envs_dir.iterdir() if not p.name.startswith(".")] == [plan.env_hash]


def test_two_threads_build_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    plan = planned(gradio_app(tmp_path), settings)
    logs = [Log(), Log()]
    results: list[Path] = []

    def build(log: Log) -> None:
        results.append(VenvBuilder(settings.envs_dir, settings).build(plan, log))

    threads = [threading.Thread(target=build, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert len(results) == 2 and results[0] == results[1]
    creations = [line for log in logs for line in log if line.startswith("==> creating")]
    assert len(creations) == 1
    assert any("reusing" in line for log in logs for line in log)


CHILD = """
import sys
from pathlib import Path
from builder import plan, spec
from builder.venv import VenvBuilder
from spaces_runtime.config import Settings
settings = Settings(data_dir=Path(sys.argv[2]))
p = plan.make(spec.load(Path(sys.argv[1])), settings)
print(VenvBuilder(settings.envs_dir, settings).build(p, print))
"""


def test_two_processes_build_once(tmp_path: Path) -> None:
    folder = gradio_app(tmp_path)
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(data)], env=env,
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=240)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert sum(out.count("==> creating") for out in outputs) == 1
    assert outputs[0].splitlines()[-1] == outputs[1].splitlines()[-1]


def test_failing_requirement_names_its_line(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    plan = planned(gradio_app(tmp_path, "six\n# not on PyPI:\nnosuchpkg-xyz==1.0\n"), settings)
    log = Log()
    with pytest.raises(BuildError) as caught:
        VenvBuilder(settings.envs_dir, settings).build(plan, log)
    message = str(caught.value)
    assert message.startswith("requirements.txt line 3: 'nosuchpkg-xyz==1.0' could not be installed: ")
    assert "nosuchpkg-xyz was not found" in message
    assert "nosuchpkg-xyz" in caught.value.log_tail and len(caught.value.log_tail.splitlines()) <= 30
    # nothing half-built is left to be mistaken for a finished environment
    assert [p for p in settings.envs_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_missing_python_version_is_a_build_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    plan = planned(gradio_app(tmp_path, front="sdk: gradio\npython_version: '3.99'\n"), settings)
    with pytest.raises(BuildError, match=r"python_version 3\.99 \(set in README\.md\) is not installed on this host"):
        VenvBuilder(settings.envs_dir, settings).build(plan, Log())


def test_an_unfinished_env_is_rebuilt(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    plan = planned(gradio_app(tmp_path), settings)
    leftover = settings.envs_dir / plan.env_hash
    (leftover / "bin").mkdir(parents=True)  # a crash before the marker was written
    env = VenvBuilder(settings.envs_dir, settings).build(plan, Log())
    assert (env / MARKER).is_file() and python_in(env).exists()
