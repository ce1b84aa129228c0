"""Environment build times: VenvBuilder against plain `uv venv && uv pip install` of the same requirements.

Run: .venv/bin/python bench/bench_env_build.py [--rounds N]

Per SDK (gradio, streamlit at the platform's default versions), with uv's cache warm:
  plain uv   `uv venv --relocatable` + `uv pip install` into a fresh folder
  ours cold  VenvBuilder.build into a fresh envs_dir (lock, scratch folder, marker, rename)
  ours reuse VenvBuilder.build again for the same env hash
Prints medians and the ratios ours/plain; the reuse ratio is what a code-only redeploy costs.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from builder import plan as build_plan
from builder.plan import BuildPlan
from builder.spec import AppSpec
from builder.venv import VenvBuilder, find_uv, python_in
from spaces_runtime.config import Settings


def quiet(_: str) -> None:
    pass


def plain_uv(plan: BuildPlan, target: Path) -> None:
    uv = find_uv()
    subprocess.run([uv, "venv", "--relocatable", "-q", "--python", plan.python_version, str(target)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python_in(target)), *plan.requirements],
                   check=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(plan: BuildPlan, settings: Settings, scratch: Path, rounds: int) -> dict[str, float]:
    plain, cold, reuse = [], [], []
    for round_ in range(rounds):
        target = scratch / f"plain-{round_}"
        plain.append(timed(lambda target=target: plain_uv(plan, target)))  # type: ignore[misc]
        envs = scratch / f"envs-{round_}"
        builder = VenvBuilder(envs, settings)
        cold.append(timed(lambda builder=builder: builder.build(plan, quiet)))  # type: ignore[misc]
        reuse.append(timed(lambda builder=builder: builder.build(plan, quiet)))  # type: ignore[misc]
        shutil.rmtree(target)
        shutil.rmtree(envs)
    return {"plain": statistics.median(plain), "cold": statistics.median(cold),
            "reuse": statistics.median(reuse)}


def sdk_plan(sdk: str, settings: Settings) -> BuildPlan:
    app_file = "app.py"
    return build_plan.make(AppSpec(folder=Path("."), title=sdk, sdk=sdk, app_file=app_file), settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    table = Table(title=f"env build, warm uv cache, median of {args.rounds}")
    for column in ("sdk", "plain uv (s)", "ours cold (s)", "ours/plain", "ours reuse (ms)", "reuse/plain"):
        table.add_column(column, justify="right" if column != "sdk" else "left")
    with tempfile.TemporaryDirectory(prefix="bench-env-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        for sdk in ("gradio", "streamlit"):
            plan = sdk_plan(sdk, settings)
            # one untimed build so that uv's cache holds every wheel: the rows compare warm builds only
            VenvBuilder(Path(tmp) / "warm", settings).build(plan, quiet)
            t = measure(plan, settings, Path(tmp), args.rounds)
            table.add_row(f"{sdk}=={plan.sdk_version}", f"{t['plain']:.2f}", f"{t['cold']:.2f}",
                          f"{t['cold'] / t['plain']:.2f}x", f"{t['reuse'] * 1000:.2f}",
                          f"{t['reuse'] / t['plain']:.5f}x")
    console.print(table)


if __name__ == "__main__":
    main()
