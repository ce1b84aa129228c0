"""The app sandbox's cost: cold start and code-only redeploy of one Gradio app, sandboxed vs unsandboxed.

Three real `spaces serve` side by side: the process backend's sandbox with apps exec'd (SPACES_ZYGOTE=0: each
app as its own uid, in its own namespaces, under cgroup limits, started by bwrap), the same with SPACES_SANDBOX=0
(the app as the platform's user on a loopback port), and the default (sandboxed, forked from a zygote). The
first two are the sandbox's cost on its own; the third is what a user gets. Each round, on each platform:

  cold start  the space paused (no process left), then `POST .../restart` until the link answers again (the
              environment exists; the app starts from nothing: namespaces, veth pair, cgroups, Python, Gradio)
  redeploy    PUT a changed app.py (requirements unchanged) until the link answers with the new code

Rounds alternate the platforms; the table shows medians and each one's ratio to unsandboxed (goal <= 1.1x).

    .venv/bin/python bench/bench_sandbox.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_redeploy import SPACE, app_source, redeploy, wait_answer  # noqa: E402

from spaces_harness import Platform, gradio_readme, write_app  # noqa: E402
from spaces_runtime.cli.remote import PlatformClient  # noqa: E402

# kind → (SPACES_SANDBOX, SPACES_ZYGOTE)
KINDS = {"sandboxed": ("1", "0"), "unsandboxed": ("0", "0"), "sandboxed+zygote": ("1", "1")}


def cold_start(platform: Platform, version: str) -> float:
    link = f"{platform.url}/spaces/{SPACE}/config"
    with httpx.Client(timeout=10) as client:
        client.post(f"{platform.url}/api/spaces/{SPACE}/pause", headers=platform.auth).raise_for_status()
        platform.wait_for(SPACE, ("PAUSED",), timeout=120)
        began = time.perf_counter()
        client.post(f"{platform.url}/api/spaces/{SPACE}/restart", headers=platform.auth).raise_for_status()
        wait_answer(client, link, f'"{version}"')
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[tuple[str, str], list[float]] = {(k, m): [] for k in KINDS for m in ("cold start", "redeploy")}
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        work = Path(tmp)
        platforms = {kind: Platform(work / kind, env={"SPACES_RUNNER_ENABLED": "0", "SPACES_SANDBOX": sandbox,
                                                      "SPACES_ZYGOTE": zygote})
                     for kind, (sandbox, zygote) in KINDS.items()}
        try:
            apis = {}
            for kind, platform in platforms.items():
                platform.data_dir.mkdir(parents=True)
                platform.start()
                apis[kind] = PlatformClient(platform.url, token=platform.token)
                app = write_app(work / f"app-{kind}", {"app.py": app_source("v0"), "README.md": gradio_readme()})
                apis[kind].deploy(SPACE, app)
                platform.wait_for(SPACE, timeout=600)
            for round_ in range(1, args.rounds + 1):
                for kind, platform in platforms.items():
                    times[(kind, "redeploy")].append(
                        redeploy(platform, apis[kind], work / f"app-{kind}", f"v{round_}"))
                    times[(kind, "cold start")].append(cold_start(platform, f"v{round_}"))
        finally:
            for platform in platforms.values():
                platform.stop()
    Console().print(report(times, args.rounds))


def report(times: dict[tuple[str, str], list[float]], rounds: int) -> Table:
    table = Table(title=f"Sandboxed vs unsandboxed · one Gradio 6.31 app · {rounds} rounds · medians · "
                        f"{os.cpu_count()} CPUs")
    for column in ("measure", "sandboxed s", "unsandboxed s", "ratio", "sandboxed+zygote s", "ratio "):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for measure in ("cold start", "redeploy"):
        boxed = statistics.median(times[("sandboxed", measure)])
        plain = statistics.median(times[("unsandboxed", measure)])
        forked = statistics.median(times[("sandboxed+zygote", measure)])
        table.add_row(measure, f"{boxed:.2f}", f"{plain:.2f}", f"{boxed / plain:.2f}x", f"{forked:.2f}",
                      f"{forked / plain:.2f}x")
    return table


if __name__ == "__main__":
    main()
