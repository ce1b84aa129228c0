"""Zygote vs plain exec, side by side in one run: how fast Gradio apps start, wake and redeploy, and how many idle
ones a host holds. Two real `spaces serve` (SPACES_ZYGOTE=1, then 0; sandbox on, runner off), one after the other,
the same apps and the same uv cache.

  cold start   a new space whose environment is cached (its zygote warm): from the upload until its link answers
               /config with its own version; the median over the density apps below
  first app    the platform's first app: the environment build, and for the zygote its start (the SDK's import)
  wake         a sleeping app (its own sleep time of 2 s, as set_space_sleep_time sets it, then -1): from an API
               client's request until /config answers with its version (the gateway holds the request)
  redeploy     code-only: a changed app.py (the requirements stay), from the upload until the new version answers
  PSS per app  N idle Gradio apps live together; each app's PSS (all its processes, from /metrics, which reads
               /proc/PID/smaps_rollup); "with zygote" adds each app's 1/N share of the zygote itself
  fit in 8 GB  8 GiB / PSS per app with its share of the zygote

    .venv/bin/python bench/bench_density.py [--apps 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from spaces_harness import Platform, gradio_readme, write_app  # noqa: E402
from spaces_runtime.cli.remote import PlatformClient  # noqa: E402

POLL_S = 0.02
GIB = 1024**3
MIB = 1024**2
_PSS = re.compile(r'^spaces_runtime_app_pss_bytes\{space="([^"]+)"\} (\d+)$', re.M)
_ZYGOTE = re.compile(r'^spaces_runtime_zygote_pss_bytes\{sdk="gradio",pid="\d+"\} (\d+)$', re.M)


def app_source(version: str) -> str:
    return (f'import gradio as gr\n\nVERSION = "{version}"\n\ndef echo(text):\n    return VERSION + text\n\n'
            f'gr.Interface(echo, "text", "text", title=VERSION).launch()\n')


@dataclass
class Figures:
    first: float = 0.0
    cold: list[float] = field(default_factory=list)
    wake: list[float] = field(default_factory=list)
    redeploy: list[float] = field(default_factory=list)
    pss: list[int] = field(default_factory=list)
    zygote_pss: int = 0
    apps: int = 0
    failed_starts: int = 0


class StartFailed(Exception):
    """The app ended in RUNTIME_ERROR while starting (on a loaded machine: Gradio's own localhost check)."""


def wait_answer(client: httpx.Client, url: str, needle: str, timeout: float = 600,
                failed: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = client.get(url)
            if response.status_code == 200 and needle in response.text:
                return
        except httpx.TransportError:
            pass
        if failed is not None and failed():
            raise StartFailed(url)
        time.sleep(POLL_S)
    raise SystemExit(f"{url} did not answer with {needle!r} within {timeout:g} s")


def deploy(platform: Platform, api: PlatformClient, folder: Path, space: str, version: str,
           figures: Figures) -> float:
    """Seconds until the new version answers; a start that fails is counted and the deploy timed again."""
    (folder / "app.py").write_text(app_source(version))
    with httpx.Client(timeout=30) as client:
        while True:
            began = time.perf_counter()
            api.deploy(space, folder)
            try:
                wait_answer(client, f"{platform.url}/spaces/{space}/config", f'"{version}"',
                            failed=lambda: platform.space(space)["stage"] == "RUNTIME_ERROR")
                return time.perf_counter() - began
            except StartFailed:
                figures.failed_starts += 1


def wake(platform: Platform, api: PlatformClient, space: str, version: str) -> float:
    api.call("POST", f"/api/spaces/{space}/sleeptime", json={"seconds": 2})
    deadline = time.monotonic() + 300
    while platform.space(space)["stage"] != "SLEEPING":
        if time.monotonic() > deadline:
            raise SystemExit(f"{space} did not fall asleep")
        time.sleep(0.2)
    api.call("POST", f"/api/spaces/{space}/sleeptime", json={"seconds": -1})
    with httpx.Client(timeout=300) as client:
        began = time.perf_counter()
        wait_answer(client, f"{platform.url}/spaces/{space}/config", f'"{version}"')
        return time.perf_counter() - began


def wait_for_compiles(data_dir: Path, timeout: float = 900) -> None:
    """Until no background bytecode compile of the platform's environments runs (builder.venv.compile_bytecode):
    it runs at idle priority but still takes a core from the starts measured next, more in exec mode, whose
    sandboxed apps read the bytecode it writes."""
    deadline = time.monotonic() + timeout
    while any(b"compileall" in cmd and str(data_dir).encode() in cmd for cmd in _cmdlines()):
        if time.monotonic() > deadline:
            raise SystemExit(f"a bytecode compile under {data_dir} still runs after {timeout:g} s")
        time.sleep(0.5)


def _cmdlines() -> list[bytes]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):  # it ended meanwhile
                found.append((proc / "cmdline").read_bytes())
    return found


def measure(mode: str, root: Path, apps: int, rounds: int) -> Figures:
    figures = Figures(apps=apps)
    env = {"SPACES_RUNNER_ENABLED": "false", "SPACES_ZYGOTE": "1" if mode == "zygote" else "0"}
    (root / "data").mkdir(parents=True)
    platform = Platform(root / "data", env=env).start()
    try:
        api = PlatformClient(platform.url, token=platform.token)
        folders = [write_app(root / f"app{i}", {"README.md": gradio_readme(f"Density {i}")}) for i in range(apps)]
        figures.first = deploy(platform, api, folders[0], "bench/d0", "v0", figures)
        wait_for_compiles(root / "data")
        for round_ in range(1, rounds + 1):
            figures.redeploy.append(deploy(platform, api, folders[0], "bench/d0", f"v{round_}", figures))
            figures.wake.append(wake(platform, api, "bench/d0", f"v{round_}"))
        for i in range(1, apps):
            figures.cold.append(deploy(platform, api, folders[i], f"bench/d{i}", f"d{i}", figures))
            print(f"{mode}: {i + 1}/{apps} apps live, the last started in {figures.cold[-1]:.2f} s", flush=True)
        time.sleep(10)  # idle: the last start's garbage settles (a measurement's pause, not a synchronisation)
        metrics = httpx.get(f"{platform.url}/metrics", timeout=60).text
        figures.pss = [int(size) for _space, size in _PSS.findall(metrics)]
        figures.zygote_pss = sum(int(size) for size in _ZYGOTE.findall(metrics))
        if len(figures.pss) != apps:
            raise SystemExit(f"{mode}: /metrics has the PSS of {len(figures.pss)} apps, not {apps}")
    finally:
        platform.stop(timeout=300)
    return figures


def per_app(figures: Figures) -> float:
    return statistics.mean(figures.pss) + figures.zygote_pss / figures.apps


def report(zygote: Figures, execd: Figures, rounds: int) -> Table:
    table = Table(title=f"Zygote vs exec · Gradio 6.31 · {zygote.apps} live apps · {rounds} rounds · medians · "
                        f"{os.cpu_count()} CPUs · {time.strftime('%Y-%m-%d %H:%M')}")
    for column in ("", "zygote", "exec", "zygote / exec", "goal", "met"):
        table.add_column(column, justify="left" if column in ("", "goal") else "right")

    def row(label: str, z: float, e: float, unit: str, goal: str, limit: float | None) -> None:
        ratio = z / e if e else float("nan")
        met = "" if limit is None else ("yes" if ratio <= limit else "no")
        table.add_row(label, f"{z:.2f} {unit}", f"{e:.2f} {unit}", f"{ratio:.2f}x", goal, met)

    med = statistics.median
    row("first app (build + zygote)", zygote.first, execd.first, "s", "", None)
    row("cold start (cached env)", med(zygote.cold), med(execd.cold), "s", "<= 0.3x exec", 0.3)
    row("wake from sleep", med(zygote.wake), med(execd.wake), "s", "<= 0.3x exec start", None)
    row("code-only redeploy", med(zygote.redeploy), med(execd.redeploy), "s", "<= 0.5x", 0.5)
    row("PSS per idle app", statistics.mean(zygote.pss) / MIB, statistics.mean(execd.pss) / MIB, "MiB", "", None)
    z_total, e_total = per_app(zygote) / MIB, per_app(execd) / MIB
    met = "yes" if z_total <= 60 else "no"
    table.add_row("PSS per app, zygote's share in", f"{z_total:.1f} MiB", f"{e_total:.1f} MiB",
                  f"{z_total / e_total:.2f}x", "<= 60 MiB", met)
    table.add_row("zygote PSS", f"{zygote.zygote_pss / MIB:.1f} MiB", "-", "", "", "")
    wake_vs_start = med(zygote.wake) / med(execd.cold)
    table.add_row("wake (zygote) / cold start (exec)", f"{wake_vs_start:.2f}x", "", "", "<= 0.3x",
                  "yes" if wake_vs_start <= 0.3 else "no")
    fit_z, fit_e = int(8 * GIB / per_app(zygote)), int(8 * GIB / per_app(execd))
    table.add_row("idle apps in 8 GiB", str(fit_z), str(fit_e), f"{fit_z / fit_e:.2f}x", "", "")
    table.add_row("starts that failed (deployed again)", str(zygote.failed_starts), str(execd.failed_starts), "", "",
                  "")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="zygote,exec", help="zygote,exec (both, the table) or one of them")
    args = parser.parse_args()
    available = int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) * 1024
    needed = args.apps * 300 * MIB  # an exec'd Gradio app's RSS with room to spare
    if needed > available:
        raise SystemExit(f"{args.apps} exec'd apps need about {needed / GIB:.1f} GiB; {available / GIB:.1f} GiB is "
                         f"available: give --apps {int(available / (300 * MIB))}")
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-density-") as tmp:
        figures = {mode: measure(mode, Path(tmp) / mode, args.apps, args.rounds) for mode in modes}
    if len(figures) == 2:
        Console(width=160).print(report(figures["zygote"], figures["exec"], args.rounds))
    for mode, found in figures.items():  # the raw figures, for a table made of runs taken apart
        print(mode, {k: v for k, v in vars(found).items() if k != "pss"},
              f"mean PSS {statistics.mean(found.pss) / MIB:.1f} MiB, "
              f"with the zygote's share {per_app(found) / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
