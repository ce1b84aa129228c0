"""Docker images against plain uv: what containers cost a user who deploys.

Run: .venv/bin/python bench/bench_docker.py [--rounds N] [--no-cold] [--out BENCHMARKS-docker.md]
(needs a running engine: scripts/install-docker.sh; the base image is built first if missing, not timed).

  cold image build    SDK + app image of tests/docker/apps/gradio_hello with BuildKit's cache pruned
                      (`docker builder prune`: downloads everything) — against `uv venv && uv pip install` of the
                      same requirements with an empty uv cache
  code-only redeploy  app.py edited → image build (dependency layers reused) + container start until HTTP 200
                      — against starting the same app as a bare process in a ready virtualenv until HTTP 200
Prints a table of medians and ratios and writes it as Markdown to --out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker
import httpx
from rich.console import Console
from rich.table import Table

from builder import plan as plans
from builder import spec as specs
from builder.docker import ImageBuilder, connect, ensure_base_image
from builder.venv import find_uv
from spaces_runtime.config import Settings
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.docker import DockerBackend
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, platform_id

APP = Path(__file__).resolve().parents[1] / "tests" / "docker" / "apps" / "gradio_hello"


def quiet(_: str) -> None:
    pass


def wait_http(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cold_image_build(client: docker.DockerClient, builder: ImageBuilder, settings: Settings,
                     folder: Path) -> float:
    spec = specs.load(folder)
    plan = plans.make(spec, settings)
    for image in client.images.list(name="spaces-runtime/sdk") + client.images.list(name="spaces-runtime/app"):
        for tag in image.tags:
            if tag.startswith("spaces-runtime/sdk:gradio-") or tag.startswith("spaces-runtime/app:"):
                client.images.remove(tag, force=True)
    client.api.prune_builds(all=True)  # BuildKit's layer cache and its uv cache mount
    started = time.perf_counter()
    builder.build(spec, plan, quiet)
    return time.perf_counter() - started


def plain_uv(plan: plans.BuildPlan, target: Path, cache: Path) -> float:
    uv = find_uv()
    env = {**os.environ, "UV_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    subprocess.run([uv, "venv", "-q", "--python", plan.python_version, str(target)], check=True, env=env)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(target / "bin" / "python"),
                    *plan.requirements], check=True, env=env)
    return time.perf_counter() - started


def bare_start(venv: Path, folder: Path) -> float:
    port = free_port()
    # the same Gradio settings the images set, so that both start the same server
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "GRADIO_SERVER_PORT": str(port), "HOME": str(folder),
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SSR_MODE": "false", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([str(venv / "bin" / "python"), "app.py"], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait()


async def redeploy(builder: ImageBuilder, backend: DockerBackend, settings: Settings,
                   folder: Path) -> tuple[float, float]:
    """(code-only rebuild, container start to HTTP 200)."""
    import asyncio

    app = folder / "app.py"
    app.write_text(app.read_text() + f"# edit {uuid.uuid4()}\n")
    spec = specs.load(folder)
    started = time.perf_counter()
    image = await asyncio.to_thread(builder.build, spec, plans.make(spec, settings), quiet)
    built = time.perf_counter()
    launch = LaunchSpec(space_id="bench/hello", sdk="gradio", app_dir=folder, app_file="app.py",
                        base_path="", image=image.tag)
    instance = await backend.launch(launch, quiet)
    await asyncio.to_thread(wait_http, instance.upstream + "/")
    ready = time.perf_counter()
    await backend.stop(instance, grace_s=2)
    return built - started, ready - built


def markdown(rows: list[tuple[str, float, float, str]], note: str) -> str:
    lines = ["# Docker backend benchmarks", "", note, "",
             "| measure | docker (s) | plain (s) | docker / plain |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {ours:.2f} | {plain:.2f} | {ours / plain:.1f}x ({what}) |"
              for name, ours, plain, what in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build (it prunes BuildKit's cache)")
    parser.add_argument("--out", type=Path, help="also write the table as markdown here (for BENCHMARKS.md)")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as scratch_dir:
        scratch = Path(scratch_dir)
        settings = Settings(backend="docker", data_dir=scratch / "data")
        client = connect(os.environ)
        ensure_base_image(client, settings.base_image, quiet)
        builder = ImageBuilder(client, settings, environ=os.environ)
        folder = scratch / "app"
        shutil.copytree(APP, folder)
        plan = plans.make(specs.load(folder), settings)
        rows: list[tuple[str, float, float, str]] = []
        venv = scratch / "venv"
        plain_cold = plain_uv(plan, venv, scratch / "uv-cache")
        if not args.no_cold:
            cold = cold_image_build(client, builder, settings, folder)
            rows.append(("cold build: image (SDK + app) vs uv venv + install, empty caches", cold, plain_cold,
                         "build"))
        backend = DockerBackend(settings, client)
        asyncio.run(redeploy(builder, backend, settings, folder))  # warm-up: first image of this code path
        results = [asyncio.run(redeploy(builder, backend, settings, folder)) for _ in range(args.rounds)]
        bare = statistics.median(bare_start(venv, folder) for _ in range(args.rounds))
        rebuild = statistics.median(r[0] for r in results)
        start = statistics.median(r[1] for r in results)
        rows.append(("code-only redeploy: rebuild + container start vs bare process start",
                     rebuild + start, bare, "redeploy"))
        rows.append(("  of which: container start to HTTP 200 vs bare process start", start, bare, "start"))
        for container in client.containers.list(
                all=True, filters={"label": f"{PLATFORM_LABEL}={platform_id(settings.data_dir)}"}):
            container.remove(force=True)
    table = Table(title=f"docker backend, medians of {args.rounds} (cold build: 1 run)")
    for column in ("measure", "docker (s)", "plain (s)", "ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, ours, plain, _ in rows:
        table.add_row(name, f"{ours:.2f}", f"{plain:.2f}", f"{ours / plain:.1f}x")
    console.print(table)
    note = (f"Machine: {os.cpu_count()} cores; engine {client.version().get('Version')}; app "
            f"tests/docker/apps/gradio_hello ({', '.join(plan.requirements)}); medians of {args.rounds}; "
            "packages come from PyPI through the network proxy in both columns.")
    if args.out is not None:
        args.out.write_text(markdown(rows, note))
        console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
