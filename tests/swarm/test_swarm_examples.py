"""`spaces serve --backend swarm` end to end on a three-node swarm: examples built on the manager, pushed to the
platform's registry and run as services on whichever nodes swarm picks, answer through the gateway exactly as
on the other backends; a pulled image also serves with `docker run` alone.

Every example (swarmkit.SWARM_EXAMPLES): the core ones are checked here, the three that call the model runner in
test_swarm_runner."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cluster import Cluster
from gradio_client import Client
from polling import wait_http
from swarmkit import SWARM_EXAMPLES, TWIN_SECRET, ManagerPlatform, node_names, tasks_of

from example_checks import check_audio_lab, check_image_filters, check_sentiment, check_streamlit_script_runs

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]  # the first test waits for the builds


def test_the_examples_answer_from_swarm_tasks(platform: ManagerPlatform, cluster: Cluster, tmp_path: Path) -> None:
    client = cluster.manager.client()
    for name in SWARM_EXAMPLES:
        assert platform.space(f"examples/{name}")["runtime"]["backend"] == "swarm"
        tasks = tasks_of(client, f"examples/{name}")
        assert len(tasks) == 1, tasks
        image = tasks[0]["Spec"]["ContainerSpec"]["Image"]
        assert image.startswith(f"{cluster.manager.ip}:5000/") and "@sha256:" in image, image
    check_sentiment(platform.example_url("sentiment"))
    check_image_filters(platform.example_url("image-filters"), tmp_path)
    check_audio_lab(platform.example_url("audio-lab"), tmp_path)
    check_streamlit_script_runs(platform.example_url("data-explorer"))


def test_tasks_run_hardened(platform: ManagerPlatform, cluster: Cluster) -> None:
    task = tasks_of(cluster.manager.client(), "examples/sentiment")[0]
    spec = task["Spec"]["ContainerSpec"]
    assert spec["User"] == "1000:1000" and spec["CapabilityDrop"] == ["ALL"] and spec["ReadOnly"] is True
    assert {m["Target"]: m["Type"] for m in spec["Mounts"]} == {"/tmp": "tmpfs", "/data": "volume"}
    limits = task["Spec"]["Resources"]["Limits"]
    assert limits["MemoryBytes"] > 0 and limits["NanoCPUs"] > 0 and limits["Pids"] == 1024
    node = cluster.node(node_names(cluster.manager.client())[task["NodeID"]].removeprefix("spt-"))
    container = node.client().containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
    assert container.exec_run("id -u").output.strip() == b"1000"
    assert container.exec_run("touch /etc/x").exit_code != 0, "the root filesystem is writable"
    assert container.exec_run("touch /data/x /tmp/x").exit_code == 0
    assert b"CapEff:\t0000000000000000" in container.exec_run("cat /proc/self/status").output


def test_a_pulled_image_serves_with_docker_run_alone(platform: ManagerPlatform, cluster: Cluster) -> None:
    """What the registry holds is the whole app: a worker pulls it by digest and runs it with no platform."""
    image = tasks_of(cluster.manager.client(), "examples/sentiment")[0]["Spec"]["ContainerSpec"]["Image"]
    worker = cluster.workers[0]
    engine = worker.client()
    engine.images.pull(image)
    container = engine.containers.run(image, detach=True, ports={"7860/tcp": ("0.0.0.0", 17860)})
    try:
        wait_http(f"http://{worker.ip}:17860/", timeout_s=120)
        check_sentiment(f"http://{worker.ip}:17860/")
    finally:
        container.remove(force=True)
    assert httpx.get(f"{platform.url}/api/health", timeout=5).status_code == 200


def test_a_secret_reaches_the_app_but_not_the_service_s_spec(platform: ManagerPlatform, cluster: Cluster) -> None:
    """tests/twin's secret (set before its first deploy) is a Docker secret mounted into its tasks and a variable
    in the app; `docker service inspect` and the tasks' container specs, which anyone who may inspect services
    on the manager reads, never hold its value."""
    answer = Client(f"{platform.url}/spaces/tests/twin/", verbose=False).predict(api_name="/secret")
    assert answer == TWIN_SECRET
    client = cluster.manager.client()
    inspected = cluster.manager.docker("service", "inspect", "spaces-tests--twin")
    assert TWIN_SECRET.strip() not in inspected and "TWIN_SECRET=" not in inspected
    assert all(TWIN_SECRET.strip() not in str(t["Spec"]) for t in tasks_of(client, "tests/twin"))
    mounted = [r["SecretName"] for t in tasks_of(client, "tests/twin") for r in t["Spec"]["ContainerSpec"]["Secrets"]]
    assert mounted and all(name.endswith(mounted[0][-12:]) and "twin_secret" in name for name in mounted), mounted
