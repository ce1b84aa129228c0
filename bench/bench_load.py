"""Load and soak on the real platform path: a Gradio app and a Streamlit app deployed to a real `spaces serve`.

1. HTTP load: `wrk` with 200 keep-alive connections for 60 s on one Gradio path, three ways side by side in one
   run: straight to the app's port (direct), through the gateway, and through Debian's nginx as a reverse proxy
   in front of the app (its own nginx.conf in a temp dir, one worker, foreground, loopback; `proxy_buffering
   off`, HTTP/1.1 keep-alive to the upstream). Each path's 60 s run in --rounds blocks (default 3 x 20 s),
   interleaved with the other paths and in a rotating order, so load from other work on a shared machine hits
   all three alike; the table shows medians over blocks (requests and errors: totals).
2. Held clients, open for the whole run (load and soak) through the gateway: 50 Streamlit WebSockets (each asks
   for a script run every --ws-rerun-s and waits for it to finish) and 50 Gradio queue SSE streams (a generator
   event that yields every --sse-tick-s). Their errors and disconnects are counted; each reconnects after one.
3. Soak: --soak-s at moderate load through the gateway (wrk, paced by a per-request delay, plus a few
   connections that close after every request, plus one short WebSocket and one short SSE job every 2 s), with
   the RSS/PSS of `spaces serve` sampled from /proc/PID/smaps_rollup every --sample-s. Passes with no errors,
   no restart (same serve process, same app instances, always RUNNING) and growth of its heap (the anonymous
   part of PSS) within --growth-bound-mib.

wrk and nginx are Debian's (`apt-get install wrk nginx`); the stream clients are asyncio (websockets, httpx),
in bench/load_streams.py. All traffic stays on loopback. Exit status 1 when the soak or the gateway's load run
has errors, a stream dropped, a restart, or growth beyond the bound.

    .venv/bin/python bench/bench_load.py                                 # 60 s per path, 600 s soak
    .venv/bin/python bench/bench_load.py --duration-s 5 --soak-s 20      # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from load_streams import Held, churn, fn_index_of, hold_sse, hold_ws, wait_for_stop  # noqa: E402

from spaces_harness import Platform, free_port, gradio_readme, write_app  # noqa: E402
from spaces_runtime.cli.remote import PlatformClient  # noqa: E402

GRADIO, STREAMLIT = "bench/loadgr", "bench/loadst"
GRADIO_APP = '''import asyncio

import gradio as gr


def echo(text):
    return text


async def ticks(count, interval):
    for i in range(int(count)):  # bounded: the bench asks for a little more than its whole run
        await asyncio.sleep(interval)
        yield str(i)


with gr.Blocks() as demo:
    text, out = gr.Textbox(), gr.Textbox()
    text.submit(echo, text, out, api_name="echo")
    count, interval, tick = gr.Number(), gr.Number(), gr.Textbox()
    count.submit(ticks, [count, interval], tick, api_name="ticks", concurrency_limit=None)
# Gradio runs at most max_threads (default 40) queue jobs at once, generators included: 50 held streams need more
demo.queue(default_concurrency_limit=None).launch(max_threads=256)
'''
STREAMLIT_APP = 'import streamlit as st\n\nst.title("Load")\nst.write("a rerun per request")\n'
STREAMLIT_README = "---\ntitle: Load\nsdk: streamlit\nsdk_version: 1.67.0\napp_file: app.py\n---\n"
NGINX_CONF = """worker_processes 1;
daemon off;
{user}pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream app {{ server {upstream}; keepalive 256; }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }}
  }}
}}
"""
# wrk writes its summary as JSON from its own counters (latency in microseconds); delay() paces a connection
WRK_LUA = """{headers}{delay}
function done(summary, latency, requests)
  local e = summary.errors
  local f = io.open("{out}", "w")
  f:write(string.format('{{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}}', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50),
    latency:percentile(99), latency.max))
  f:close()
end
"""


STARTED = time.monotonic()


def progress(what: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {what}", flush=True)


# --- wrk ---------------------------------------------------------------------------------------------------
@dataclass
class Wrk:
    requests: int
    rps: float
    errors: int
    p50_ms: float
    p99_ms: float


async def run_wrk(url: str, connections: int, seconds: int, args: argparse.Namespace, work: Path,
                  delay_ms: int = 0, close: bool = False) -> Wrk:
    """One wrk run as a child process (the event loop keeps serving the held clients meanwhile)."""
    out = work / f"wrk-{uuid.uuid4().hex}.json"
    script = work / f"{out.stem}.lua"
    script.write_text(WRK_LUA.format(out=out, headers='wrk.headers["Connection"] = "close"\n' if close else "",
                                     delay=f"function delay() return {delay_ms} end" if delay_ms else ""))
    argv = ["wrk", "-t", str(min(args.wrk_threads, connections)), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", f"{args.wrk_timeout_s}s", "-s", str(script), url]
    child = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(child.communicate(), seconds + 60)
    if child.returncode != 0 or not out.is_file():
        raise SystemExit(f"wrk failed ({child.returncode}): {' '.join(argv)}\n{output.decode(errors='replace')}")
    r = json.loads(out.read_text())
    errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Wrk(r["requests"], r["requests"] / (r["duration_us"] / 1e6), errors, r["p50_us"] / 1000,
               r["p99_us"] / 1000)


def median_wrk(runs: list[Wrk]) -> Wrk:
    """Medians over rounds; requests and errors are the totals."""
    return Wrk(sum(r.requests for r in runs), statistics.median(r.rps for r in runs), sum(r.errors for r in runs),
               statistics.median(r.p50_ms for r in runs), statistics.median(r.p99_ms for r in runs))


# --- the platform and nginx --------------------------------------------------------------------------------
def start_platform(work: Path) -> Platform:
    """A real `spaces serve` (process backend, no model runner) with both apps deployed and RUNNING."""
    platform = Platform(work / "data", env={"SPACES_RUNNER_ENABLED": "0"}).start()
    try:
        token_file = platform.data_dir / "token"  # writes need the platform's admin token where it has one
        client = PlatformClient(platform.url, token=token_file.read_text().strip() if token_file.is_file() else None)
        client.deploy(GRADIO, write_app(work / "gr", {"app.py": GRADIO_APP, "README.md": gradio_readme("Load")}))
        client.deploy(STREAMLIT, write_app(work / "st", {"app.py": STREAMLIT_APP, "README.md": STREAMLIT_README}))
        for space in (GRADIO, STREAMLIT):
            platform.wait_for(space, timeout=600)
    except BaseException:
        platform.stop()
        raise
    return platform


Instance = tuple[str, str, float, str]


def instance_of(platform: Platform, space: str) -> Instance:
    """(stage, backend ref, start time, error): a restart changes the ref and the start time."""
    record = platform.space(space)
    runtime = record.get("runtime") or {}
    return (str(record.get("stage")), str(runtime.get("backend_ref")), float(runtime.get("started_at") or 0),
            str(record.get("error") or ""))


def why(platform: Platform, spaces: list[str]) -> str:
    """What the platform says about spaces that restarted: their last events and run-log lines."""
    lines = []
    for space in spaces:
        events = httpx.get(f"{platform.url}/api/spaces/{space}/events", timeout=30).json()
        lines += [f"--- {space}: last events", *(json.dumps(e)[:300] for e in events[-12:])]
        log = httpx.get(f"{platform.url}/api/spaces/{space}/logs/run", params={"follow": 0}, timeout=30).text
        lines += [f"--- {space}: run log tail", *log.splitlines()[-25:]]
    return "\n".join(lines)


def upstream_of(platform: Platform, space: str) -> str:
    runtime = platform.space(space).get("runtime") or {}
    if not runtime.get("upstream"):
        raise SystemExit(f"{space} reports no upstream: {platform.space(space)}")
    return str(runtime["upstream"]).rstrip("/")


def wait_port(port: int, child: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"nginx exited ({child.returncode}):\n{log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nginx did not listen on {port} in {timeout:g} s")


def start_nginx(upstream: str, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install nginx")
    tmp, port = work / "nginx", free_port()
    tmp.mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers would drop to nobody, who cannot write tmp
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream=upstream.removeprefix("http://"), port=port, user=user))
    log = tmp / "error.log"
    child = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf), "-e", str(log)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_port(port, child, log)
    return child, port


# --- memory ------------------------------------------------------------------------------------------------
@dataclass
class Memory:
    """One reading of /proc/PID/smaps_rollup, in MiB. ``anon`` (Pss_Anon) is the heap: what a leak grows. PSS
    also holds a share of the libraries' pages, and that share moves when other processes that map the same files
    (other people's `spaces serve` on this shared machine) start or exit, so the bound is judged on ``anon``."""

    rss: float
    pss: float
    anon: float


@dataclass
class Sample:
    at_s: float
    memory: Memory
    instances: dict[str, Instance]  # empty when `spaces serve` is gone
    changes: list[str]  # spaces whose instance or stage differs from the sample before

    @property
    def down(self) -> bool:
        """`spaces serve` exited or an app was not RUNNING."""
        return not self.instances or any(i[0] != "RUNNING" for i in self.instances.values())


def memory_of(pid: int) -> Memory:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        fields[name.strip()] = int(value.split()[0])
    return Memory(fields["Rss"] / 1024, fields["Pss"] / 1024, fields["Pss_Anon"] / 1024)


async def sample_memory(platform: Platform, initial: dict[str, Instance], every_s: float, stop: asyncio.Event,
                        samples: list[Sample]) -> None:
    """Every ``every_s`` until stop: memory of `spaces serve` and whether anything restarted."""
    assert platform.process is not None
    began, before = time.monotonic(), initial
    for _ in range(100_000):
        alive = platform.process.poll() is None
        now = {space: await asyncio.to_thread(instance_of, platform, space) for space in initial} if alive else {}
        changes = [f"{s} {now[s][0]} {now[s][3]}".strip() for s in now if now[s][:3] != before[s][:3]]
        memory = memory_of(platform.process.pid) if alive else Memory(0, 0, 0)
        samples.append(Sample(time.monotonic() - began, memory, now, changes))
        for change in changes:
            progress(f"changed: {change}")
        if stop.is_set() or not alive:
            return
        before = now
        await wait_for_stop(stop, every_s)


# --- the run -----------------------------------------------------------------------------------------------
@dataclass
class Results:
    http: dict[str, list[Wrk]]
    soak: list[Wrk]
    ws: Held
    sse: Held
    churn_ws: Held
    churn_sse: Held
    samples: list[Sample]
    before_load: Memory
    after_load: Memory


async def http_phases(targets: dict[str, str], args: argparse.Namespace, work: Path) -> dict[str, list[Wrk]]:
    runs: dict[str, list[Wrk]] = {name: [] for name in targets}
    for name, url in targets.items():  # warm each path: connections, caches, the app's own code paths
        progress(f"warming {name}: {url}")
        await run_wrk(url, args.connections, args.warmup_s, args, work)
    names = list(targets)
    block_s = max(1, args.duration_s // args.rounds)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            progress(f"round {round_ + 1}: {name}, {args.connections} connections for {block_s} s")
            runs[name].append(await run_wrk(targets[name], args.connections, block_s, args, work))
    return runs


async def soak(platform: Platform, args: argparse.Namespace, work: Path, gateway_url: str,
               churned: tuple[Held, Held],
               churn_args: tuple[str, str, httpx.AsyncClient, str, int]) -> tuple[list[Wrk], list[Sample]]:
    initial = {space: instance_of(platform, space) for space in (GRADIO, STREAMLIT)}
    progress(f"soak for {args.soak_s} s")
    stop, samples = asyncio.Event(), list[Sample]()
    sampler = asyncio.create_task(sample_memory(platform, initial, args.sample_s, stop, samples))
    churner = asyncio.create_task(churn(stop, *churn_args, *churned))
    loads = await asyncio.gather(
        run_wrk(gateway_url, args.soak_connections, args.soak_s, args, work, delay_ms=args.soak_delay_ms),
        run_wrk(gateway_url, 2, args.soak_s, args, work, delay_ms=args.soak_delay_ms, close=True))
    stop.set()
    await asyncio.gather(sampler, churner)
    return list(loads), samples


async def run(platform: Platform, args: argparse.Namespace, work: Path) -> Results:
    assert platform.process is not None
    nginx, nginx_port = start_nginx(upstream_of(platform, GRADIO), work)
    try:
        return await run_with_nginx(platform, args, work, nginx_port)
    finally:
        nginx.terminate()
        nginx.wait(10)


async def run_with_nginx(platform: Platform, args: argparse.Namespace, work: Path, nginx_port: int) -> Results:
    assert platform.process is not None
    prefix = f"/spaces/{GRADIO}"
    targets = {"direct": upstream_of(platform, GRADIO) + prefix + args.path,
               "gateway": platform.url + prefix + args.path,
               "nginx": f"http://127.0.0.1:{nginx_port}{prefix}{args.path}"}
    base, ws_url = platform.url + prefix, platform.url.replace("http", "ws") + f"/spaces/{STREAMLIT}/_stcore/stream"
    fn = fn_index_of(base + "/config", "ticks")
    planned = 3 * (args.warmup_s + args.duration_s) + args.soak_s + 120
    stop, tasks = asyncio.Event(), []
    ws, sse, churn_ws, churn_sse = Held(), Held(), Held(), Held()
    first_runs = [asyncio.Event() for _ in range(args.held_ws)]
    limits = httpx.Limits(max_connections=args.held_sse + 20, max_keepalive_connections=args.held_sse + 20)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=60), limits=limits) as http:
        count = math.ceil(2 * planned / args.sse_tick_s)  # a held job outlasts the run; the bench ends it
        stagger = args.ws_rerun_s / args.held_ws
        tasks += [asyncio.create_task(hold_ws(ws_url, platform.url, stop, ws, args.ws_rerun_s, i * stagger,
                                              first_runs[i], i)) for i in range(args.held_ws)]
        tasks += [asyncio.create_task(hold_sse(http, base, fn, count, args.sse_tick_s, stop, sse, i * 0.05, i))
                  for i in range(args.held_sse)]
        progress(f"opening {args.held_ws} WebSockets and {args.held_sse} SSE streams")
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first_runs)), args.ws_rerun_s + 120)
        before = memory_of(platform.process.pid)
        http_runs = await http_phases(targets, args, work)
        after = memory_of(platform.process.pid)
        soaked, samples = await soak(platform, args, work, targets["gateway"], (churn_ws, churn_sse),
                                     (ws_url, platform.url, http, base, fn))
        stop.set()
        progress("closing the held streams")
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return Results(http_runs, soaked, ws, sse, churn_ws, churn_sse, samples, before, after)


# --- the report --------------------------------------------------------------------------------------------
def ends(samples: list[Sample], kind: str) -> tuple[float, float]:
    """One measure at the soak's start and end: medians of the first and last few samples, so one noisy reading
    of a shared machine neither hides nor fakes growth."""
    k = max(1, min(3, len(samples) // 3))
    values = [getattr(s.memory, kind) for s in samples]
    return statistics.median(values[:k]), statistics.median(values[-k:])


def restarts(samples: list[Sample]) -> int:
    """Restarts seen: new app instances (by backend ref) after the first sample, and `spaces serve` exiting."""
    refs: dict[str, set[str]] = {}
    for sample in samples:
        for space, (_, ref, _, _) in sample.instances.items():
            if ref != "None":  # no instance while it starts
                refs.setdefault(space, set()).add(ref)
    return sum(len(r) - 1 for r in refs.values()) + any(not s.instances for s in samples)


def slope_mib_per_min(samples: list[Sample]) -> float:
    if len(samples) < 3:
        return 0.0
    return statistics.linear_regression([s.at_s / 60 for s in samples], [s.memory.anon for s in samples]).slope


def http_table(results: Results, args: argparse.Namespace) -> Table:
    block_s = max(1, args.duration_s // args.rounds)
    table = Table(title=f"HTTP load · GET {args.path} of a Gradio app · wrk, {args.connections} connections, "
                        f"{args.rounds} x {block_s} s per path, interleaved{' (medians)' if args.rounds > 1 else ''}"
                        f" · {args.held_ws} WS + {args.held_sse} SSE clients held · {os.cpu_count()} CPUs")
    for column in ("path", "requests/s", "p50 ms", "p99 ms", "errors", "requests"):
        table.add_column(column, justify="left" if column == "path" else "right")
    runs = {name: median_wrk(r) for name, r in results.http.items()}
    for name, r in runs.items():
        table.add_row(name, f"{r.rps:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", str(r.errors), f"{r.requests:,}")
    via = runs["gateway"]
    for base in ("direct", "nginx"):
        other = runs[base]
        table.add_row(f"gateway ÷ {base}", f"{via.rps / other.rps:.2f}x", f"{via.p50_ms / other.p50_ms:.2f}x",
                      f"{via.p99_ms / other.p99_ms:.2f}x", "", "", style="bold")
    return table


def held_table(results: Results) -> Table:
    table = Table(title="Streams through the gateway · held: open for the whole run · churn: soak only, one of "
                        "each per 2 s · longest wait: slowest script run (WS), longest silence on a stream (SSE) · "
                        "errors: failed opens and runs, each reconnect attempt (1 s apart) counted")
    for column in ("clients", "opened", "messages", "runs / steps", "errors", "disconnects", "longest wait s",
                   "longest outage s"):
        table.add_column(column, justify="left" if column == "clients" else "right")
    for name, held in (("held Streamlit WS", results.ws), ("held Gradio SSE", results.sse),
                       ("churn Streamlit WS", results.churn_ws), ("churn Gradio SSE", results.churn_sse)):
        table.add_row(name, str(held.opened), f"{held.messages:,}", f"{held.rounds:,}", str(held.errors),
                      str(held.disconnects), f"{held.longest_gap_s:.1f}", f"{held.longest_outage_s:.1f}")
    return table


def soak_table(results: Results, args: argparse.Namespace) -> Table:
    keep, closing = results.soak
    table = Table(title=f"Soak through the gateway · {args.soak_s} s · `spaces serve` memory every "
                        f"{args.sample_s:g} s ({len(results.samples)} samples)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"keep-alive load ({args.soak_connections} conns, {args.soak_delay_ms} ms between requests)",
                  f"{keep.rps:,.0f} req/s, p50 {keep.p50_ms:.1f} ms, p99 {keep.p99_ms:.1f} ms, {keep.errors} errors")
    table.add_row(f"a new connection per request (2 conns, {args.soak_delay_ms} ms between requests)",
                  f"{closing.rps:,.0f} req/s, p50 {closing.p50_ms:.1f} ms, p99 {closing.p99_ms:.1f} ms, "
                  f"{closing.errors} errors")
    for label, m in (("before the HTTP load", results.before_load), ("after the HTTP load", results.after_load)):
        table.add_row(f"RSS / PSS / PSS anon {label}", f"{m.rss:.1f} / {m.pss:.1f} / {m.anon:.1f} MiB")
    for kind, name in (("rss", "RSS"), ("pss", "PSS"), ("anon", "PSS anon")):
        start, end = ends(results.samples, kind)
        values = [getattr(s.memory, kind) for s in results.samples]
        table.add_row(f"{name} soak start → end (min..max)",
                      f"{start:.1f} → {end:.1f} MiB ({min(values):.1f}..{max(values):.1f}), {end - start:+.1f}")
    start, end = ends(results.samples, "anon")
    per = (end - start) * 2**20 / max(1, keep.requests + closing.requests)
    table.add_row("PSS anon growth (bound), per soak request, trend",
                  f"{end - start:+.2f} MiB ({args.growth_bound_mib:g}), {per:+.0f} B, "
                  f"{slope_mib_per_min(results.samples):+.3f} MiB/min", style="bold")
    table.add_row("restarts seen (serve exited or an app's instance changed; samples not RUNNING)",
                  f"{restarts(results.samples)} ({sum(s.down for s in results.samples)})")
    return table


def verdict(results: Results, args: argparse.Namespace) -> list[str]:
    """What failed, in words; empty when the run passed."""
    start, end = ends(results.samples, "anon")
    failures = [f"{r.errors} errors in the soak's load" for r in results.soak if r.errors]
    gateway_errors = sum(r.errors for r in results.http["gateway"])
    if gateway_errors:
        failures.append(f"{gateway_errors} errors through the gateway at {args.connections} connections")
    for name, held in (("held WS", results.ws), ("held SSE", results.sse), ("churn WS", results.churn_ws),
                       ("churn SSE", results.churn_sse)):
        if held.errors or held.disconnects:
            failures.append(f"{name}: {held.errors} errors, {held.disconnects} disconnects {held.notes}")
    if restarts(results.samples) or any(s.down for s in results.samples):
        changes = [f"{s.at_s:.0f} s: {c}" for s in results.samples for c in s.changes]
        failures.append(f"a restart: `spaces serve` exited or an app instance changed: {changes[:6]}")
    if end - start > args.growth_bound_mib:
        failures.append(f"`spaces serve` heap (PSS anon) grew {end - start:.1f} MiB (bound {args.growth_bound_mib:g})")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="/config", help="the Gradio app's path that wrk requests")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration-s", type=int, default=60, help="wrk time per path, all rounds together")
    parser.add_argument("--rounds", type=int, default=3, help="blocks the time per path is cut into, interleaved")
    parser.add_argument("--warmup-s", type=int, default=5)
    parser.add_argument("--wrk-threads", type=int, default=1, help="1 leaves the second core to the servers")
    parser.add_argument("--wrk-timeout-s", type=int, default=10, help="a request slower than this is an error")
    parser.add_argument("--held-ws", type=int, default=50)
    parser.add_argument("--held-sse", type=int, default=50)
    parser.add_argument("--ws-rerun-s", type=float, default=30, help="each held WebSocket asks for a run this often")
    parser.add_argument("--sse-tick-s", type=float, default=2, help="each held SSE job yields this often")
    parser.add_argument("--soak-s", type=int, default=600)
    parser.add_argument("--soak-connections", type=int, default=16)
    parser.add_argument("--soak-delay-ms", type=int, default=100, help="pause between a connection's requests")
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--growth-bound-mib", type=float, default=8,
                        help="most growth of the heap (PSS anon) of `spaces serve` over the soak that still passes")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    console = Console(width=130)
    console.print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        progress("starting `spaces serve` and deploying the apps")
        platform = start_platform(Path(tmp))
        try:
            results = asyncio.run(run(platform, args, Path(tmp)))
            restarted = sorted({c.split()[0] for s in results.samples for c in s.changes})
            explanation = why(platform, restarted) if restarted and platform.process.poll() is None else ""
        finally:
            platform.stop()
    console.print(f"load average after: {os.getloadavg()}")
    for table in (http_table(results, args), held_table(results), soak_table(results, args)):
        console.print(table)
    failures = verdict(results, args)
    if explanation:
        console.print(explanation, markup=False, highlight=False)
    for line in failures:
        console.print(f"[red]FAIL[/] {line}")
    console.print("[green]PASS[/]: no errors, no restarts, growth within the bound" if not failures else "")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except httpx.HTTPError as exc:
        raise SystemExit(f"the platform did not answer: {exc}") from exc
