"""Code-only redeploy against a bare start: how long a new version of a Gradio app takes to answer.

  redeploy    a real `spaces serve` runs the app; time from the PUT of a changed app.py (the requirements stay,
              so the environment is reused) until the app's link answers with the new code (RUNNING, the
              version string of the new code in /config, read through the gateway)
  bare start  the same app.py launched directly with the same virtualenv's python, until /config answers

Rounds alternate the two; the table shows medians and the ratio redeploy / bare start, i.e. what the platform
adds on top of the app's own start-up (upload, unpack, spec and plan, environment reuse, launch, readiness
polling, the swap).

A second table times stopping the platform (SIGTERM until the process exits, no apps, runner off) with an open
gallery tab (a reader holding /api/events with no timeout) against the same stop with no tab: an open stream must
not hold shutdown up to uvicorn's graceful limit (tests/integration/test_lifecycle.py checks that it does not).

    .venv/bin/python bench/bench_redeploy.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from spaces_harness import Platform, free_port, gradio_readme, write_app  # noqa: E402
from spaces_runtime.cli.remote import PlatformClient  # noqa: E402

SPACE = "bench/redeploy"
POLL_S = 0.02


def app_source(version: str) -> str:
    return (f'import gradio as gr\n\nVERSION = "{version}"\n\ndef echo(text):\n    return VERSION + text\n\n'
            f'gr.Interface(echo, "text", "text", title=VERSION).launch()\n')


def wait_answer(client: httpx.Client, url: str, needle: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = client.get(url)
            if response.status_code == 200 and needle in response.text:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_S)
    raise SystemExit(f"{url} did not answer with {needle!r} within {timeout:g} s")


def redeploy(platform: Platform, api: PlatformClient, app: Path, version: str) -> float:
    (app / "app.py").write_text(app_source(version))
    link = f"{platform.url}/spaces/{SPACE}/config"
    with httpx.Client(timeout=10) as client:
        began = time.perf_counter()
        api.deploy(SPACE, app)
        wait_answer(client, link, f'"{version}"')
        elapsed = time.perf_counter() - began
    stage = platform.space(SPACE)["stage"]
    if stage != "RUNNING":
        raise SystemExit(f"the new version answers but the space is {stage}")
    return elapsed


def bare_start(python: Path, app: Path, version: str) -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    (app / "app.py").write_text(app_source(version))
    with httpx.Client(timeout=10) as client:
        began = time.perf_counter()
        process = subprocess.Popen([str(python), "app.py"], cwd=app, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_answer(client, f"http://127.0.0.1:{port}/config", f'"{version}"')
            return time.perf_counter() - began
        finally:
            process.terminate()
            process.wait(10)


def stop_time(data_dir: Path, open_tab: bool) -> float:
    """Seconds from SIGTERM until `spaces serve` exits, with or without a reader on /api/events."""
    platform = Platform(data_dir, env={"SPACES_RUNNER_ENABLED": "0"}).start()
    assert platform.process is not None
    streaming = threading.Event()
    if open_tab:
        threading.Thread(target=hold_events, args=(platform.url, streaming), daemon=True).start()
        if not streaming.wait(30):
            raise SystemExit("/api/events sent nothing within 30 s")
    began = time.perf_counter()
    platform.process.send_signal(signal.SIGTERM)
    platform.process.wait(600)
    return time.perf_counter() - began


def hold_events(url: str, streaming: threading.Event) -> None:
    """A browser tab: reads the event stream with no read timeout until the server ends it."""
    with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", f"{url}/api/events", timeout=None) as stream:
        for _ in stream.iter_lines():
            streaming.set()


def venv_python(data_dir: Path) -> Path:
    found = sorted(data_dir.glob("envs/*/bin/python"))
    if not found:
        raise SystemExit(f"no virtualenv under {data_dir / 'envs'}")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"redeploy": [], "bare start": []}
    with tempfile.TemporaryDirectory(prefix="bench-redeploy-") as tmp:
        work = Path(tmp)
        platform = Platform(work / "data", env={"SPACES_RUNNER_ENABLED": "0"}).start()
        try:
            api = PlatformClient(platform.url, token=platform.token)
            app = write_app(work / "app", {"app.py": app_source("v0"), "README.md": gradio_readme("Redeploy")})
            bare = write_app(work / "bare", {"app.py": app_source("b0")})
            api.deploy(SPACE, app)
            platform.wait_for(SPACE, timeout=600)
            python = venv_python(work / "data")
            bare_start(python, bare, "warm")  # first start compiles bytecode; both sides then start warm
            for round_ in range(1, args.rounds + 1):
                times["redeploy"].append(redeploy(platform, api, app, f"v{round_}"))
                times["bare start"].append(bare_start(python, bare, f"b{round_}"))
        finally:
            platform.stop()
        stops: dict[str, list[float]] = {"stop, one open tab": [], "stop, no tab": []}
        for round_ in range(1, args.rounds + 1):
            stops["stop, one open tab"].append(stop_time(work / f"stop-tab-{round_}", open_tab=True))
            stops["stop, no tab"].append(stop_time(work / f"stop-none-{round_}", open_tab=False))
    console = Console()
    console.print(report(times, args.rounds))
    console.print(report_stops(stops, args.rounds))


def report(times: dict[str, list[float]], rounds: int) -> Table:
    table = Table(title=f"Code-only redeploy vs bare start · one Gradio 6.31 app · {rounds} rounds · medians · "
                        f"{os.cpu_count()} CPUs")
    for column in ("path", "median s", "min s", "max s"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, values in times.items():
        table.add_row(label, f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}")
    ratio = statistics.median(times["redeploy"]) / statistics.median(times["bare start"])
    table.add_row("redeploy / bare start", f"{ratio:.2f}x", "", "", style="bold")
    return table


def report_stops(stops: dict[str, list[float]], rounds: int) -> Table:
    table = Table(title=f"Stopping the platform with an open gallery tab vs none · {rounds} rounds · medians · "
                        f"{os.cpu_count()} CPUs")
    for column in ("path", "median s", "min s", "max s"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, values in stops.items():
        table.add_row(label, f"{statistics.median(values):.2f}", f"{min(values):.2f}", f"{max(values):.2f}")
    ratio = statistics.median(stops["stop, one open tab"]) / statistics.median(stops["stop, no tab"])
    table.add_row("open tab / no tab", f"{ratio:.2f}x", "", "", style="bold")
    return table


if __name__ == "__main__":
    main()
