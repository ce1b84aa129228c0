"""A real app virtualenv (gradio 6.31 + streamlit 1.67) shared by the supervisor and gateway tests.

Built once per machine with uv (seconds from uv's cache) under the temp dir, behind a file lock so parallel test
runs do not race. Without uv or a package index the tests that need it fail under CI and skip elsewhere.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from prerequisites import missing

GRADIO = "gradio==6.31.0"
STREAMLIT = "streamlit==1.67.0"
VENV = Path(tempfile.gettempdir()) / "spaces-runtime-test-appenv-gradio6.31.0-streamlit1.67.0"


def _uv() -> str | None:
    beside_python = Path(sys.executable).parent / "uv"
    return str(beside_python) if beside_python.exists() else shutil.which("uv")


def app_venv() -> Path:
    """The virtualenv's directory, built on first use."""
    uv = _uv()
    if uv is None:
        missing("uv is not installed")
    with open(f"{VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (VENV / ".complete").exists():
            _build(str(uv))
    return VENV


def _build(uv: str) -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    steps = ([uv, "venv", "-q", "-p", "3.11", str(VENV)], [uv, "pip", "install", "-q", GRADIO, STREAMLIT])
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            missing(f"building the app virtualenv failed: {done.stderr[-2000:]}")
    (VENV / ".complete").touch()


