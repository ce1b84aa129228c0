#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first (Python deps, Docker Engine, Chromium).
# With CI set, a test that would skip (no Docker, no browser) fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/mypy
# the unit suite again on the lowest Python pyproject.toml admits (see setup.sh); both runs report
lowest=0
.venv-lowest/bin/python -m pytest -q -p no:cacheprovider tests/unit || lowest=$?
.venv/bin/python -m pytest -q -ra --durations=15 "$@"
exit "$lowest"
