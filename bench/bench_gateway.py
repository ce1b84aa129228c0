"""Gateway overhead against one real Gradio app: small requests direct vs through the gateway, side by side.

N concurrent httpx clients each send GET {app}/config back to back for a fixed time; the table shows throughput
and p50/p99 latency for both paths and their ratios. The app runs under the Supervisor with the ProcessBackend;
the gateway runs in its own process under uvicorn, as in `spaces serve`.

    .venv/bin/python bench/bench_gateway.py [--clients 16] [--seconds 5] [--venv DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spaces_runtime.config import Settings  # noqa: E402
from spaces_runtime.logs import LogBook  # noqa: E402
from spaces_runtime.stages import Stage  # noqa: E402
from spaces_runtime.supervisor.backend import LaunchSpec  # noqa: E402
from spaces_runtime.supervisor.loop import Supervisor  # noqa: E402
from spaces_runtime.supervisor.process import ProcessBackend, free_port  # noqa: E402

DEFAULT_VENV = Path(tempfile.gettempdir()) / "spaces-runtime-test-appenv-gradio6.31.0-streamlit1.67.0"
APP = 'import gradio as gr\n\ndef echo(text):\n    return text\n\ngr.Interface(echo, "text", "text").launch()\n'
GATEWAY = textwrap.dedent("""
    import sys, uvicorn
    from starlette.responses import PlainTextResponse
    from spaces_runtime.gateway.proxy import Gateway
    from spaces_runtime.gateway.targets import Upstream

    class One:
        async def target(self, owner, name):
            return Upstream(sys.argv[1], forward_prefix=True)
        def touch(self, owner, name):
            pass
        async def wake(self, owner, name):
            pass

    platform = PlainTextResponse("platform")
    uvicorn.run(Gateway(platform, One(), "localhost"), host="127.0.0.1", port=int(sys.argv[2]),
                log_level="warning", lifespan="off")
""")


def ensure_venv(venv: Path) -> Path:
    if not (venv / "bin" / "python").exists():
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(venv)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "gradio==6.31.0"], env=env, check=True)
    return venv


async def load(url: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    """Requests per second and each request's latency (s) while ``clients`` loop for ``seconds``."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one_client() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return len(latencies) / (time.perf_counter() - began), latencies


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout} s")


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000 if len(values) > 1 else float("nan")


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    (work / "app").mkdir()
    (work / "app" / "app.py").write_text(APP)
    settings = Settings(data_dir=work, probe_interval_s=0.2)
    supervisor = Supervisor(ProcessBackend(settings), LogBook(work / "logs"), settings, lambda *a: None)
    spec = LaunchSpec(space_id="bench/app", sdk="gradio", app_dir=work / "app", app_file="app.py",
                      base_path="/spaces/bench/app", env_dir=ensure_venv(args.venv), startup_timeout_s=120)
    gateway = None
    try:
        if await supervisor.run_app(spec) is not Stage.RUNNING:
            raise SystemExit(supervisor.logs.tail("bench/app", "run"))
        upstream = supervisor.upstream("bench/app")
        assert upstream is not None
        port = free_port()
        gateway = subprocess.Popen([sys.executable, "-c", GATEWAY, upstream, str(port)], cwd=REPO)
        wait_port(port)
        urls = {"direct": f"{upstream}/spaces/bench/app/config",
                "gateway": f"http://127.0.0.1:{port}/spaces/bench/app/config"}
        results = {}
        for label, url in urls.items():
            await load(url, args.clients, 1.0)  # warm up connections and the app
            results[label] = await load(url, args.clients, args.seconds)
        report(results, args)
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(10)
        await supervisor.shutdown()


def report(results: dict[str, tuple[float, list[float]]], args: argparse.Namespace) -> None:
    table = Table(title=f"GET /config on one Gradio 6.31 app · {args.clients} clients · {args.seconds:g} s each "
                        f"· {os.cpu_count()} CPUs")
    for column in ("path", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    rows = {label: (rps, quantile(lat, 0.50), quantile(lat, 0.99)) for label, (rps, lat) in results.items()}
    for label, (rps, p50, p99) in rows.items():
        table.add_row(label, f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}")
    direct, via = rows["direct"], rows["gateway"]
    table.add_row("gateway / direct", f"{via[0] / direct[0]:.2f}x", f"{via[1] / direct[1]:.2f}x",
                  f"{via[2] / direct[2]:.2f}x", style="bold")
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="a virtualenv with gradio 6.31")
    asyncio.run(main(parser.parse_args()))
