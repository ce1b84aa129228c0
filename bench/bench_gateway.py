"""Gateway overhead on the real platform path: one Gradio app deployed to a real `spaces serve`, small requests
sent straight to the app's port and through the gateway (/spaces/bench/echo/…), side by side.

N keep-alive clients send requests back to back for a few seconds; direct and gateway runs alternate in rounds
(which goes first flips each round) so a machine that is busy with other work hurts both alike; the table shows
medians over rounds of throughput and p50/p99 latency, and the gateway/direct ratios.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams, not httpx: on a 2-core machine an
httpx client spends more CPU per request than the gateway does, and that CPU would be taken from both paths.

    .venv/bin/python bench/bench_gateway.py [--clients 16] [--seconds 3] [--rounds 5]
    .venv/bin/python bench/bench_gateway.py --profile 15    # load the gateway only, for py-spy on `spaces serve`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from spaces_harness import Platform, gradio_readme, write_app  # noqa: E402
from spaces_runtime.cli.remote import PlatformClient  # noqa: E402

SPACE = "bench/echo"
APP = 'import gradio as gr\n\ndef echo(text):\n    return text\n\ngr.Interface(echo, "text", "text").launch()\n'
PATHS = {"GET /config": ("GET", "/config", b""),
         "GET /gradio_api/info": ("GET", "/gradio_api/info", b"")}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float


# --- the load generator ------------------------------------------------------------------------------------
def request_bytes(method: str, url: str, body: bytes) -> bytes:
    parts = urlsplit(url)
    head = (f"{method} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: */*\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def load(url: str, method: str, body: bytes, clients: int, seconds: float) -> Run:
    """``clients`` connections each send requests back to back for ``seconds``."""
    parts = urlsplit(url)
    raw = request_bytes(method, url, body)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(raw)
                status = await read_response(reader)
                if status != 200:
                    raise SystemExit(f"{method} {url} answered {status}")
                latencies.append(time.perf_counter() - start)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100)
    return Run(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000)


# --- the platform ------------------------------------------------------------------------------------------
def start_platform(work: Path) -> Platform:
    """A real `spaces serve` (process backend, no model runner) with the echo app deployed and RUNNING."""
    platform = Platform(work / "data", env={"SPACES_RUNNER_ENABLED": "0"}).start()
    app = write_app(work / "echo", {"app.py": APP, "README.md": gradio_readme("Echo")})
    PlatformClient(platform.url, token=platform.token).deploy(SPACE, app)
    platform.wait_for(SPACE, timeout=600)
    return platform


def upstream_of(platform: Platform) -> str:
    runtime = platform.space(SPACE).get("runtime") or {}
    if not runtime.get("upstream"):
        raise SystemExit(f"{SPACE} reports no upstream: {platform.space(SPACE)}")
    return str(runtime["upstream"]).rstrip("/")


def urls(platform: Platform, path: str) -> dict[str, str]:
    prefix = f"/spaces/{SPACE}"
    return {"direct": upstream_of(platform) + prefix + path, "gateway": platform.url + prefix + path}


async def measure(platform: Platform, args: argparse.Namespace) -> dict[str, dict[str, list[Run]]]:
    results: dict[str, dict[str, list[Run]]] = {}
    for label, (method, path, body) in PATHS.items():
        targets = urls(platform, path)
        for url in targets.values():  # warm connections, caches and the app
            await load(url, method, body, args.clients, 1.0)
        runs: dict[str, list[Run]] = {"direct": [], "gateway": []}
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for which in order:
                runs[which].append(await load(targets[which], method, body, args.clients, args.seconds))
        results[label] = runs
    return results


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in ("rps", "p50_ms", "p99_ms")))


def report(results: dict[str, dict[str, list[Run]]], args: argparse.Namespace) -> Table:
    table = Table(title=f"Gateway vs direct · one Gradio app under `spaces serve` · {args.clients} clients · "
                        f"{args.rounds} rounds x {args.seconds:g} s · medians · {os.cpu_count()} CPUs")
    for column in ("request", "path", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("request", "path") else "right")
    for label, runs in results.items():
        direct, via = median_run(runs["direct"]), median_run(runs["gateway"])
        table.add_row(label, "direct", f"{direct.rps:,.0f}", f"{direct.p50_ms:.2f}", f"{direct.p99_ms:.2f}")
        table.add_row("", "gateway", f"{via.rps:,.0f}", f"{via.p50_ms:.2f}", f"{via.p99_ms:.2f}")
        table.add_row("", "gateway / direct", f"{via.rps / direct.rps:.2f}x",
                      f"+{via.p50_ms - direct.p50_ms:.2f} ms", f"{via.p99_ms / direct.p99_ms:.2f}x",
                      style="bold", end_section=True)
    return table


async def profile_load(platform: Platform, seconds: float, clients: int) -> None:
    method, path, body = PATHS["GET /config"]
    url = urls(platform, path)["gateway"]
    assert platform.process is not None
    print(f"loading {url} for {seconds:g} s; profile with: py-spy record -p {platform.process.pid} "
          f"-d {seconds - 2:g} -f raw -o gateway.txt", flush=True)
    run = await load(url, method, body, clients, seconds)
    print(f"{run.rps:,.0f} requests/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=float, default=0, help="only load the gateway this long, for py-spy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        platform = start_platform(Path(tmp))
        try:
            if args.profile:
                asyncio.run(profile_load(platform, args.profile, args.clients))
            else:
                Console().print(report(asyncio.run(measure(platform, args)), args))
        finally:
            platform.stop()


if __name__ == "__main__":
    try:
        main()
    except httpx.HTTPError as exc:
        raise SystemExit(f"the platform did not answer: {exc}") from exc
