"""What a test needs from the machine (Docker, Chromium, uv, a Python): missing, it skips on a developer's machine
and fails on CI, where every Docker, browser and sandbox test must really run (tests/conftest.py also turns any
skip into a failure there)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(why: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set: this test must run here)")
    pytest.skip(why)
