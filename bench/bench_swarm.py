"""The swarm backend beside the docker backend: time from `spaces deploy` of a new version to every replica
serving it, and gateway throughput to a space with 2 replicas vs 1, on the three-node test swarm
(tests/swarm/cluster.py: three engines on this one machine, so the 2 cores are shared by every node).

    .venv/bin/python bench/bench_swarm.py [--clients 16] [--seconds 5] [--rounds 2]

Redeploy: the app's code changes (a thin last layer over the cached SDK image), so each run builds one layer,
then the backend rolls it out: docker starts a new container, probes it and swaps; swarm pushes the image to
its registry and updates the service (start-first, one task at a time, each health-checked). Throughput: the
load generator of bench_gateway.py, GET of the app's /config through the gateway, no cookie (so requests are
spread over the tasks), 1 replica and 2 replicas alternating per round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
for place in (REPO, REPO / "tests", REPO / "tests" / "swarm", REPO / "bench"):
    sys.path.insert(0, str(place))

from bench_gateway import load  # noqa: E402
from cluster import Cluster  # noqa: E402
from swarmkit import manager_platform, sdk_images, tasks_of  # noqa: E402

from builder.docker.render import BOOTSTRAP_BASE  # noqa: E402
from spaces_harness import Platform, write_app  # noqa: E402
from spaces_runtime.config import Settings  # noqa: E402

SPACE = "bench/twin"
APP = 'import gradio as gr\n\nwith gr.Blocks() as demo:\n    gr.Markdown("{text}")\n\ndemo.launch()\n'


def app(folder: Path, text: str, replicas: int) -> Path:
    readme = f"---\ntitle: Twin\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\nreplicas: {replicas}\n---\n"
    return write_app(folder, {"README.md": readme, "app.py": APP.replace("{text}", text)})


def serving(platform: Platform, text: str, tasks: int, cluster: Cluster | None) -> bool:
    """Every replica serves ``text``: the right number of running tasks, and the gateway answers it."""
    if cluster is not None and len(tasks_of(cluster.manager.client(), SPACE)) != tasks:
        return False
    try:
        return all(text in httpx.get(f"{platform.url}/spaces/{SPACE}/config", timeout=10).text for _ in range(4))
    except httpx.HTTPError:
        return False


def redeploy_s(platform: Platform, work: Path, text: str, replicas: int, cluster: Cluster | None) -> float:
    began = time.monotonic()
    platform.cli("deploy", str(app(work / text, text, replicas)), "--name", SPACE, check=True, timeout=900)
    while not serving(platform, text, replicas, cluster):
        if time.monotonic() - began > 600:
            raise SystemExit(f"{text} was not served by {replicas} replica(s) within 600 s")
        time.sleep(0.2)
    return time.monotonic() - began


def docker_redeploys(work: Path, rounds: int) -> list[float]:
    # the docker backend's build contexts go to DATA_DIR/docker, which only a base-image bootstrap creates; with
    # SPACES_BASE_IMAGE present the first build would find no folder (reported; wiring/swarm.py makes its own)
    (work / "docker-data" / "docker").mkdir(parents=True)
    platform = Platform(work / "docker-data", extra_args=["--backend", "docker"],
                        env={"SPACES_RUNNER_ENABLED": "0", "SPACES_BASE_IMAGE": BOOTSTRAP_BASE}).start()
    try:
        platform.cli("deploy", str(app(work / "d0", "d0", 1)), "--name", SPACE, check=True, timeout=900)
        return [redeploy_s(platform, work, f"d{i + 1}", 1, None) for i in range(rounds)]
    finally:
        platform.stop()


def swarm_runs(work: Path, args: argparse.Namespace) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    cluster = Cluster(work / "swarm")
    try:
        names = sdk_images(Settings(backend="docker", base_image=BOOTSTRAP_BASE))
        cluster.start()
        cluster.load_images(names)
        (work / "swarm-platform").mkdir()
        platform = manager_platform(cluster, work / "swarm-platform")
        platform.env["SPACES_RUNNER_ENABLED"] = "0"  # as the docker side: no runner image built during the figures
        platform.start()
        try:
            platform.cli("deploy", str(app(work / "s0", "s0", 1)), "--name", SPACE, check=True, timeout=900)
            redeploys: dict[int, list[float]] = {1: [], 2: []}
            throughput: dict[int, list[float]] = {1: [], 2: []}
            url = f"{platform.url}/spaces/{SPACE}/config"
            for i in range(args.rounds):
                for replicas in (1, 2):
                    redeploys[replicas].append(redeploy_s(platform, work, f"s{i}r{replicas}", replicas, cluster))
                    run = asyncio.run(load(url, "GET", b"", args.clients, args.seconds))
                    throughput[replicas].append(run.rps)
            return redeploys, throughput
        finally:
            platform.stop()
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-swarm-") as tmp:
        work = Path(tmp)
        docker = docker_redeploys(work, args.rounds)
        redeploys, throughput = swarm_runs(work, args)
    table = Table("what", "median", "runs", title="swarm vs docker backend")
    table.add_row("docker: deploy → serving (1 container)", f"{statistics.median(docker):.1f} s",
                  ", ".join(f"{x:.1f}" for x in docker))
    for replicas in (1, 2):
        runs = redeploys[replicas]
        table.add_row(f"swarm: deploy → {replicas} replica(s) serving", f"{statistics.median(runs):.1f} s",
                      ", ".join(f"{x:.1f}" for x in runs))
    for replicas in (1, 2):
        runs = throughput[replicas]
        table.add_row(f"gateway → {replicas} replica(s), {args.clients} clients",
                      f"{statistics.median(runs):.0f} req/s", ", ".join(f"{x:.0f}" for x in runs))
    ratio = statistics.median(throughput[2]) / statistics.median(throughput[1])
    table.add_row("throughput 2 replicas / 1", f"{ratio:.2f}x", "")
    Console().print(table)


if __name__ == "__main__":
    main()
