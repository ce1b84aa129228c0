"""/data on the swarm: a space with one replica is pinned to the node that holds its volume (a constraint and a
label on its service), a space with two is not, and `spaces nodes drain` moves a pinned space WITH its data:
what the app wrote is on its new node, owned as before, and the app answers there. The outage (the app is
stopped for the copy) is measured through the gateway and bounded by OUTAGE_S."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cluster import Cluster
from polling import wait_until
from swarmkit import Load, ManagerPlatform, node_names, tasks_of

from example_checks import check_sentiment, check_streamlit_script_runs
from spaces_runtime.swarm.datapin import DATA_NODE_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]  # the first test may wait for the platform
OUTAGE_S = 90  # stop (3 s drain) + the copy's sender job + the new task's start and health check, on 2 loaded cores
NOTE = "written before the drain"
CHECKS = {"examples/sentiment": check_sentiment, "examples/data-explorer": check_streamlit_script_runs}
RUNNER_LABEL = "spaces-runtime.runner"  # the model runner's nodes: a runner app there can go nowhere else


def movable(cluster: Cluster) -> str:
    """A pinned example whose node can be drained: not the runner's node, whose runner apps could not move."""
    client = cluster.manager.client()
    for space in CHECKS:
        node = client.nodes.get(tasks_of(client, space)[0]["NodeID"])
        if node.attrs["Spec"].get("Labels", {}).get(RUNNER_LABEL) != "1":
            return space
    return next(iter(CHECKS))


def service_spec(cluster: Cluster, space_id: str) -> dict[str, Any]:
    services = cluster.manager.client().services.list(filters={"label": f"spaces-runtime.space={space_id}"})
    assert len(services) == 1, services
    return services[0].attrs["Spec"]


def in_task(cluster: Cluster, task: dict[str, Any], command: str) -> tuple[int, str]:
    """Run ``command`` in the task's container, on the node's own engine."""
    node = node_names(cluster.manager.client())[task["NodeID"]].removeprefix("spt-")
    container = cluster.node(node).client().containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
    done = container.exec_run(["sh", "-c", command])
    return done.exit_code, done.output.decode(errors="replace").strip()


def test_one_replica_is_pinned_and_two_are_not(platform: ManagerPlatform, cluster: Cluster) -> None:
    spec = service_spec(cluster, "examples/sentiment")
    pinned = spec["Labels"][DATA_NODE_LABEL]
    assert f"node.id=={pinned}" in spec["TaskTemplate"]["Placement"]["Constraints"]
    assert [t["NodeID"] for t in tasks_of(cluster.manager.client(), "examples/sentiment")] == [pinned]
    twin = service_spec(cluster, "tests/twin")
    assert DATA_NODE_LABEL not in twin["Labels"]
    assert not any(c.startswith("node.id==") for c in twin["TaskTemplate"].get("Placement", {}).get("Constraints")
                   or [])
    listed = {n["name"]: n for n in json.loads(platform.cli("nodes", "--json", check=True).stdout)}
    holder = node_names(cluster.manager.client())[pinned]
    assert "examples/sentiment" in listed[holder]["data"] and "tests/twin" not in listed[holder]["data"]


def test_drain_moves_a_pinned_space_with_its_data(platform: ManagerPlatform, cluster: Cluster) -> None:
    client = cluster.manager.client()
    nodes = node_names(client)
    space = movable(cluster)
    url = f"{platform.url}/spaces/{space}/"
    before = tasks_of(client, space)[0]
    code, said = in_task(cluster, before, f"mkdir -p /data/db && echo '{NOTE}' > /data/db/note.txt")
    assert code == 0, said
    old = nodes[before["NodeID"]]
    try:
        with Load(url, timeout=60, pause=0.1) as outage:
            drained = platform.cli("nodes", "drain", old, check=True, timeout=900)
            assert space in drained.stdout
            wait_until(lambda: tasks_of(client, space) and httpx.get(url, timeout=10).status_code == 200, 120,
                       f"{space} to answer from its new node", interval=0.5, ignoring=(httpx.HTTPError,))
        after = tasks_of(client, space)[0]
        assert nodes[after["NodeID"]] != old
        assert service_spec(cluster, space)["Labels"][DATA_NODE_LABEL] == after["NodeID"]
        code, said = in_task(cluster, after, "cat /data/db/note.txt && stat -c %u /data/db/note.txt /data")
        assert code == 0 and said.split("\n") == [NOTE, "1000", "1000"], said
        CHECKS[space](url)
        print(f"\n{space} moved {old} -> {nodes[after['NodeID']]}: longest run of failed requests "
              f"{outage.longest:.1f} s ({len(outage.failures)} of {outage.done} failed), slowest answer "
              f"{outage.slowest:.1f} s")
        assert outage.longest + outage.slowest < OUTAGE_S, (outage.longest, outage.slowest, outage.failures[:5])
    finally:
        platform.cli("nodes", "activate", old, check=True)
