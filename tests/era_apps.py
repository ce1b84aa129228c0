"""Apps written the way Spaces of each SDK era were, and how to run one directly, as its author did.

Shared by tests/integration/test_eras.py, tests/docker/test_docker_eras.py (both through ``DirectEras``, one per
session: each app is installed and run directly once) and bench/bench_eras.py. "Directly" means what Hugging Face
did when the app was published: a fresh virtualenv with the pinned SDK and requirements.txt (resolved as of the
SDK release when ``exclude_newer`` is given, else as of today), then `python app.py` or `streamlit run app.py`.
Calls go through tests/era_probe.py run with the app's own interpreter, so each era is called with its own
gradio_client or Streamlit protocol.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from polling import wait_answering

from builder.releases import release_time

PROBE = Path(__file__).with_name("era_probe.py")


@dataclass(frozen=True)
class EraApp:
    name: str
    sdk: str
    sdk_version: str
    app: str
    requirements: str = ""
    python_version: str | None = None
    # gradio: [api_name, args] to call; streamlit: the WebSocket path of its era (see spaces_runtime.sdk_eras)
    calls: list[list[Any]] = field(default_factory=list)
    stream_path: str = "_stcore/stream"
    own_port: int | None = None  # the app binds this port itself, whatever GRADIO_SERVER_PORT says

    def readme(self) -> str:
        python = f'python_version: "{self.python_version}"\n' if self.python_version else ""
        return (f"---\ntitle: {self.name}\nemoji: 🕰️\nsdk: {self.sdk}\nsdk_version: {self.sdk_version}\n"
                f"{python}app_file: app.py\n---\n")

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "README.md").write_text(self.readme())
        (folder / "app.py").write_text(self.app)
        if self.requirements:
            (folder / "requirements.txt").write_text(self.requirements)
        return folder

    def probe_argument(self) -> str:
        return json.dumps(self.calls) if self.sdk == "gradio" else self.stream_path


GRADIO_4 = EraApp(
    name="gradio-4-44", sdk="gradio", sdk_version="4.44.0",
    # a Space of late 2024: gradio 4.44 and an unpinned huggingface_hub, whose 1.x removed HfFolder
    requirements="huggingface_hub\n",
    app="""import gradio as gr

def greet(name):
    return f"Hello {name}!"

def add(a, b):
    return a + b

with gr.Blocks() as demo:
    name = gr.Textbox(label="Name")
    greeting = gr.Textbox(label="Greeting")
    gr.Button("Greet").click(greet, name, greeting, api_name="greet")
    a, b, total = gr.Number(), gr.Number(), gr.Number()
    gr.Button("Add").click(add, [a, b], total, api_name="add")

demo.queue().launch()
""",
    calls=[["/greet", ["Ada"]], ["/add", [2, 3]]],
)

GRADIO_5 = EraApp(
    name="gradio-5-9", sdk="gradio", sdk_version="5.9.1",
    requirements="numpy\n",
    app="""import gradio as gr
import numpy as np

def stats(text):
    lengths = np.array([len(w) for w in text.split()] or [0])
    return {"words": int((lengths > 0).sum()), "longest": int(lengths.max())}

def shout(text):
    return text.upper()

with gr.Blocks() as demo:
    box = gr.Textbox()
    gr.Button("Stats").click(stats, box, gr.JSON(), api_name="stats")
    gr.Button("Shout").click(shout, box, gr.Textbox(), api_name="shout")

demo.launch()
""",
    calls=[["/stats", ["era true builds"]], ["/shout", ["hi"]]],
)

STREAMLIT_1_17 = EraApp(
    name="streamlit-1-17", sdk="streamlit", sdk_version="1.17.0", stream_path="stream",
    app="""import pandas as pd
import streamlit as st

st.title("Streamlit 1.17")
frame = pd.DataFrame({"x": [1, 2, 3], "y": [2, 4, 6]})
st.line_chart(frame, x="x", y="y")
st.markdown(f"total **{int(frame.y.sum())}**")
""",
)

STREAMLIT_1_25 = EraApp(
    name="streamlit-1-25", sdk="streamlit", sdk_version="1.25.0",
    # unpinned, as most Spaces write them: today's pandas/altair/pyarrow do not fit streamlit 1.25
    requirements="pandas\naltair\n",
    app="""import altair as alt
import pandas as pd
import streamlit as st

st.header("Streamlit 1.25")
frame = pd.DataFrame({"fruit": ["apple", "pear", "fig"], "count": [3, 5, 2]})
st.altair_chart(alt.Chart(frame).mark_bar().encode(x="fruit", y="count"))
st.dataframe(frame)
st.markdown(f"fruits **{len(frame)}**")
""",
)

PYTHON_3_12 = EraApp(
    name="python-3-12", sdk="gradio", sdk_version="6.31.0", python_version="3.12",
    app="""import platform

import gradio as gr

def version():
    return ".".join(platform.python_version_tuple()[:2])

with gr.Blocks() as demo:
    gr.Button("Which Python").click(version, None, gr.Textbox(), api_name="python")

demo.launch()
""",
    calls=[["/python", []]],
)

# The line most Space code has: on the process backend each app binds 7860 in a network namespace of its own
HARDCODED_PORT = EraApp(
    name="hardcoded-port", sdk="gradio", sdk_version="5.9.1", own_port=7860,
    app="""import gradio as gr

with gr.Blocks() as demo:
    gr.Button("Echo").click(lambda text: text, gr.Textbox(), gr.Textbox(), api_name="echo")

demo.launch(server_name="0.0.0.0", server_port=7860)
""",
    calls=[["/echo", ["same port as on Hugging Face"]]],
)

APPS = (GRADIO_4, GRADIO_5, STREAMLIT_1_17, STREAMLIT_1_25, PYTHON_3_12, HARDCODED_PORT)


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is not on PATH; install it with `pip install uv`")
    return found


def direct_venv(app: EraApp, folder: Path, python: str, exclude_newer: str | None) -> subprocess.CompletedProcess[str]:
    """A virtualenv for ``app`` as Hugging Face built it: the SDK pin plus requirements.txt."""
    env = {**os.environ, "VIRTUAL_ENV": str(folder)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([uv(), "venv", "-q", "--python", python, str(folder)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    if done.returncode != 0:
        return done
    packages = [f"{app.sdk}=={app.sdk_version}", *app.requirements.split()]
    dated = ["--exclude-newer", exclude_newer] if exclude_newer else []
    return subprocess.run([uv(), "pip", "install", "-q", *dated, *packages], env=env, capture_output=True,
                          text=True, timeout=900, check=False)


@contextmanager
def running_directly(app: EraApp, folder: Path, venv: Path, port: int, timeout: float = 180) -> Iterator[str]:
    """The app started from its folder in its own virtualenv on ``port``; yields its URL once it answers."""
    python = venv / "bin" / "python"
    port = app.own_port or port
    if app.sdk == "gradio":
        argv = [str(python), "app.py"]
        ready = f"http://127.0.0.1:{port}/config"
    else:
        argv = [str(python), "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                "--server.address", "127.0.0.1", "--server.headless", "true",
                "--browser.gatherUsageStats", "false"]
        ready = f"http://127.0.0.1:{port}/"
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(folder), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "VIRTUAL_ENV": str(venv), "LANG": "C.UTF-8"}
    log = folder.parent / f"{app.name}-direct.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_answering(process, ready, log, timeout)
        yield f"http://127.0.0.1:{port}/"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def probe(app: EraApp, python: Path, url: str) -> dict[str, Any]:
    """What the app at ``url`` answers, asked with the interpreter (and so the client) of its own era."""
    done = subprocess.run([str(python), str(PROBE), app.sdk, url, app.probe_argument()], capture_output=True,
                          text=True, timeout=300, check=False, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    if done.returncode != 0:
        raise RuntimeError(f"probing {url} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


class DirectEras:
    """Each era app installed and run directly once per session, as its author had it: its folder, its era's
    virtualenv (resolved as of a day after its SDK release) and what it answers when run directly. Both the
    process and the docker backend's era tests compare against the same answers; a virtualenv is built on first
    use, so a module asks only for the apps it deploys."""

    def __init__(self, root: Path, pythons: dict[str, Path]) -> None:
        self.root = root
        self.pythons = pythons  # minor version → interpreter (builder.pythons.discover)
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._built: dict[str, tuple[Path, Path]] = {}
        self._answers: dict[str, dict[str, Any]] = {}

    @staticmethod
    def key(app: EraApp) -> str:
        return f"{app.name}-py{app.python_version or 'default'}"

    def absent(self, apps: tuple[EraApp, ...]) -> list[str]:
        """The Pythons these apps need that the host lacks."""
        return sorted({app.python_version or "3.11" for app in apps} - set(self.pythons))

    def built(self, app: EraApp) -> tuple[Path, Path]:
        """The app's folder and virtualenv (built now if this session has not yet)."""
        key = self.key(app)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._built:
                as_of = release_time(app.sdk, app.sdk_version) + timedelta(days=1)
                folder = app.write(self.root / key / "app")
                python = str(self.pythons[app.python_version or "3.11"])
                done = direct_venv(app, self.root / key / "venv", python, f"{as_of:%Y-%m-%dT%H:%M:%SZ}")
                assert done.returncode == 0, f"{app.name} does not install directly: {done.stderr[-2000:]}"
                self._built[key] = folder, self.root / key / "venv"
            return self._built[key]

    def python(self, app: EraApp) -> Path:
        """The app's own interpreter, which carries its era's client."""
        return self.built(app)[1] / "bin" / "python"

    def answer(self, app: EraApp, port: int) -> dict[str, Any]:
        """What the app answers when run directly (asked once per session)."""
        key = self.key(app)
        folder, venv = self.built(app)
        with self._locks[key]:
            if key not in self._answers:
                with running_directly(app, folder, venv, port) as url:
                    self._answers[key] = probe(app, venv / "bin" / "python", url)
            return self._answers[key]
