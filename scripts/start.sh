#!/usr/bin/env bash
# Starts the platform on the embedded default (process backend) with every example deployed.
# Open the printed gallery URL; stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/spaces serve --examples examples "$@"
