"""Run every benchmark in bench/ one after another and print all their tables.

Each bench runs as its own subprocess, so one that fails (no Docker Engine, no torch) does not stop the others;
the summary at the end says which ran, how long each took, and the exit status of any that failed. Benches that
do not exist in this checkout are skipped with a note.

    .venv/bin/python bench/run_all.py [--quick] [--only gateway,redeploy]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
# name → (file, arguments for a quick run); the full run uses each bench's own defaults
BENCHES: dict[str, tuple[str, list[str]]] = {
    "env_build": ("bench_env_build.py", ["--rounds", "1"]),
    "gateway": ("bench_gateway.py", ["--rounds", "2", "--seconds", "2"]),
    "redeploy": ("bench_redeploy.py", ["--rounds", "2"]),
    "runner": ("bench_runner.py", ["--rounds", "1"]),
    "docker": ("bench_docker.py", ["--rounds", "1", "--no-cold"]),
    "load": ("bench_load.py", ["--duration-s", "6", "--soak-s", "20"]),  # full: 60 s per path, 600 s soak
}


def run_one(name: str, quick: bool, console: Console) -> tuple[str, float, int | None]:
    """Run one bench with its output going straight to this terminal; return (name, seconds, exit status)."""
    file, quick_args = BENCHES[name]
    path = BENCH / file
    if not path.is_file():
        console.print(f"[yellow]{file} is not in this checkout; skipped[/]")
        return name, 0.0, None
    console.rule(f"[bold]{file}")
    began = time.perf_counter()
    status = subprocess.call([sys.executable, str(path), *(quick_args if quick else [])], cwd=BENCH.parent)
    return name, time.perf_counter() - began, status


def summary(results: list[tuple[str, float, int | None]]) -> Table:
    table = Table(title="benchmarks")
    for column in ("bench", "seconds", "result"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for name, seconds, status in results:
        result = "skipped" if status is None else "ok" if status == 0 else f"[red]failed (exit {status})[/]"
        table.add_row(name, f"{seconds:.0f}" if status is not None else "", result)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run of every bench")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; write one of {', '.join(BENCHES)}")
    console = Console()
    results = [run_one(name, args.quick, console) for name in names]
    console.rule()
    console.print(summary(results))
    return 1 if any(status not in (0, None) for _, _, status in results) else 0


if __name__ == "__main__":
    sys.exit(main())
