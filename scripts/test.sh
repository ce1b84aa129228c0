#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first (Python deps, Docker Engine, Chromium).
# With CI set, a test that would skip (no Docker, no browser) fails instead.
#   scripts/test.sh            everything, in two shards side by side (below)
#   scripts/test.sh ARGS...    one pytest run with ARGS (a folder, -k, --durations=0), after the same checks
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/mypy
# the unit suite again on the lowest Python pyproject.toml admits (see setup.sh); every run reports
lowest=0
.venv-lowest/bin/python -m pytest -q -p no:cacheprovider tests/unit || lowest=$?
if [ "$#" -gt 0 ]; then
  .venv/bin/python -m pytest -q -ra --durations=15 "$@"
  exit "$lowest"
fi

# Two pytest processes side by side: about half the suite's time is spent waiting (an app's start, a Docker
# build's download, a health check's interval), and one process leaves a core idle then. The engine shard holds
# what drives Docker Engines (the docker backend, the swarm's own engines, the sandbox attacks on both backends)
# and the era apps, whose direct runs the process and docker era tests share (tests/conftest.py direct_eras);
# the apps shard holds the rest. Each has its own temporary root, so neither cleans up the other's folders.
# two modules of the apps' side ride with it, so that both shards take about as long (a sharded run here: 1663 s
# apps, 1295 s engine, before they moved)
# tests/swarm comes last: its cluster (three engines, a registry, every example's task and their health checks)
# lives until the session ends, and took CPU from every module after it
engine=(tests/docker tests/security tests/integration/test_eras.py tests/integration/test_zygote.py
        tests/integration/test_people.py tests/swarm)
ignored=()
for path in "${engine[@]}"; do ignored+=("--ignore=$path"); done
root=${TMPDIR:-/tmp}/spaces-tests
mkdir -p "$root"
engine_log="$root/engine-shard.log"
.venv/bin/python -m pytest -q -ra --durations=15 -p no:cacheprovider --basetemp="$root/engine" "${engine[@]}" \
  >"$engine_log" 2>&1 &
engine_pid=$!
trap 'kill "$engine_pid" 2>/dev/null || true' EXIT
echo "test.sh: the engine shard (${engine[*]}) runs beside this one; its output follows at the end ($engine_log)"
apps=0
.venv/bin/python -m pytest -q -ra --durations=15 -p no:cacheprovider --basetemp="$root/apps" tests "${ignored[@]}" \
  || apps=$?
engine_rc=0
wait "$engine_pid" || engine_rc=$?
trap - EXIT
echo "===== the engine shard: ${engine[*]} ====="
cat "$engine_log"
echo "test.sh: lowest-Python unit suite exit $lowest, apps shard exit $apps, engine shard exit $engine_rc"
[ "$lowest" = 0 ] && [ "$apps" = 0 ] && [ "$engine_rc" = 0 ]
