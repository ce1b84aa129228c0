"""Runner benchmark on the embedding model (minilm): batching gain, cost against in-process, per-call overhead.

    python bench/bench_runner.py [--seconds 8] [--clients 32] [--device auto]

Prints one table. Goals (issue 5): runner batched / runner unbatched >= 3x with 32 concurrent clients;
runner batched / in-process batched >= 0.85x; runner batch-1 latency - in-process batch-1 latency <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spaces_runtime.client import AsyncRunner, Runner  # noqa: E402
from spaces_runtime.runner.tokens import app_token, read_secret  # noqa: E402
from spaces_runtime.runner.worker import default_threads  # noqa: E402

TOKEN: dict[str, str] = {}  # the runners share the data dir, so one secret signs for both
TEXTS = [f"query {i}: how do I find a {w} near the river in spring" for i, w in
         enumerate(["cafe", "bakery", "museum", "park", "bridge", "library", "market", "station"] * 8)]


def load_in_process(device: str, threads: int) -> Any:
    """The same handler class the worker runs, called directly in this process."""
    import torch

    from spaces_runtime.runner.catalog import builtin_specs
    from spaces_runtime.runner.handlers import MiniLM

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    torch.set_num_threads(threads)
    model = MiniLM(builtin_specs()["minilm"].path, dev)
    for _ in range(3):
        model.embed(TEXTS[:32])
    return model


def in_process(model: Any, seconds: float) -> tuple[float, float, float]:
    """(texts/s unbatched, texts/s at batch 32, median batch-1 latency) calling the model directly."""
    one = _loop(lambda i: model.embed([TEXTS[i % 64]]), seconds)
    batched = _loop(lambda i: model.embed(TEXTS[(i % 2) * 32:(i % 2) * 32 + 32]), seconds)
    return len(one) / sum(one), 32 * len(batched) / sum(batched), statistics.median(one)


def _loop(fn: Any, seconds: float) -> list[float]:
    times, end, i = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
        i += 1
    return times


def start_runner(data: Path, max_batch: int, device: str, threads: int) -> tuple[subprocess.Popen[str], str]:
    sock = data / f"run-{max_batch}" / "runner.sock"
    proc = subprocess.Popen([sys.executable, "-m", "spaces_runtime.runner", "--data-dir", str(data),
                             "--socket", str(sock), "--max-batch", str(max_batch), "--device", device,
                             "--preload", "minilm", "--threads", str(threads)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
    assert proc.stdout and "listening" in proc.stdout.readline(), "runner did not start"
    return proc, f"unix://{sock}"


async def closed_loop(url: str, clients: int, seconds: float) -> float:
    """texts/s with ``clients`` callers each sending one text and waiting for the answer, back to back."""
    runner = AsyncRunner(url, token=TOKEN["bench"])
    model = runner.model("minilm")
    for _ in range(2):
        await asyncio.gather(*(model.predict([TEXTS[i]]) for i in range(clients)))
    done = 0
    end = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal done
        while time.perf_counter() < end:
            await model.predict([TEXTS[(k + done) % 64]])
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - start
    await runner.aclose()
    return done / elapsed


def latency_pair(model: Any, url: str, seconds: float) -> tuple[float, float]:
    """Median batch-1 latency (in-process, runner), alternating blocks of 10 calls so load hits both alike."""
    remote = Runner(url, token=TOKEN["bench"]).model("minilm")
    for _ in range(5):
        remote.predict([TEXTS[0]])  # after the 32-client run the first lone request waits for company once
    local: list[float] = []
    runner: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        local += _loop_n(lambda i: model.embed([TEXTS[i % 64]]), 10)
        runner += _loop_n(lambda i: remote.predict([TEXTS[i % 64]]), 10)
    return statistics.median(local), statistics.median(runner)


def transport_latency(url: str, data: Path, seconds: float) -> float:
    """Median round trip of a 4-float tensor through a 4x2 linear model: the runner's own cost per call."""
    import numpy as np
    import torch

    path = data / "tiny.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2).eval()), str(path))
    client = Runner(url, token=TOKEN["bench"])
    client.register("bench-tiny", path, input_shape=[4])
    model, x = client.model("bench-tiny"), np.ones((1, 4), np.float32)
    for _ in range(20):
        model.predict(x)
    return statistics.median(_loop(lambda i: model.predict(x), seconds))


def _loop_n(fn: Any, n: int) -> list[float]:
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=2.0, help="per measurement and round")
    p.add_argument("--rounds", type=int, default=3, help="measurements interleave; medians are reported")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch threads, both sides")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = load_in_process(args.device, args.threads)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        procs = [start_runner(Path(tmp), b, args.device, args.threads) for b in (32, 1)]
        TOKEN["bench"] = app_token(read_secret(Path(tmp) / "runner.secret"), "bench")
        try:
            (_, batched_url), (_, unbatched_url) = procs
            for _ in range(args.rounds):  # interleaved: a shared machine's load hits every measure alike
                ip_one, ip_batched, _ = in_process(model, args.seconds)
                measures = {
                    "ip_one": ip_one, "ip_batched": ip_batched,
                    "batched": asyncio.run(closed_loop(batched_url, args.clients, args.seconds)),
                    "unbatched": asyncio.run(closed_loop(unbatched_url, args.clients, args.seconds))}
                measures["ip_latency"], measures["latency"] = latency_pair(model, batched_url, args.seconds)
                measures["transport"] = transport_latency(unbatched_url, Path(tmp), args.seconds / 2)
                for key, value in measures.items():
                    rows.setdefault(key, []).append(value)
            admin = Runner(batched_url, token=TOKEN["bench"])
            extra = {"max_batch_seen": admin.metrics()["models"]["minilm"]["max_batch_requests"],
                     "device": admin.status()["device"]}
        finally:
            for proc, _ in procs:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    report(args, {k: statistics.median(v) for k, v in rows.items()}, extra)
    spread = {k: f"{min(v):.4g}..{max(v):.4g}" for k, v in rows.items()}
    print("spread across rounds (min..max; latencies in s):", spread)


def report(args: argparse.Namespace, m: dict[str, float], extra: dict[str, object]) -> None:
    gain = m["batched"] / m["unbatched"]
    vs_ip = m["batched"] / m["ip_batched"]
    overhead_ms = (m["latency"] - m["ip_latency"]) * 1000
    t = Table(title=f"runner bench: minilm, {args.clients} concurrent clients, device {extra['device']}, "
                    f"{platform.node()} ({os.cpu_count()} cpus, {args.threads} torch threads), "
                    f"medians of {args.rounds} interleaved rounds, {time.strftime('%Y-%m-%d %H:%M')}")
    for col in ("measure", "value", "goal", "met"):
        t.add_column(col)
    rows = [
        ("in-process, batch 1", f"{m['ip_one']:.0f} texts/s", "", ""),
        ("in-process, batch 32", f"{m['ip_batched']:.0f} texts/s", "", ""),
        ("runner unbatched (max batch 1)", f"{m['unbatched']:.0f} texts/s", "", ""),
        ("runner batched (max batch 32)", f"{m['batched']:.0f} texts/s",
         f"largest batch: {extra['max_batch_seen']} requests", ""),
        ("runner batched / unbatched", f"{gain:.2f}x", ">= 3x", "yes" if gain >= 3 else "NO"),
        ("runner batched / in-process batched", f"{vs_ip:.2f}x", ">= 0.85x", "yes" if vs_ip >= 0.85 else "NO"),
        ("batch-1 latency: in-process", f"{m['ip_latency'] * 1000:.2f} ms", "", ""),
        ("batch-1 latency: runner", f"{m['latency'] * 1000:.2f} ms", "", ""),
        ("per-call overhead", f"{overhead_ms:.2f} ms", "<= 2 ms", "yes" if overhead_ms <= 2 else "NO"),
        ("round trip, 4x2 linear model", f"{m['transport'] * 1000:.2f} ms", "(transport alone)", ""),
    ]
    for row in rows:
        t.add_row(*row)
    Console(width=120).print(t)


if __name__ == "__main__":
    main()
