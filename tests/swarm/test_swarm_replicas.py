"""Replicas on the three-node swarm: two tasks on two nodes both serve, a visitor stays on one task (Gradio's
queue, Streamlit's WebSocket), a redeploy and a drain under steady load fail no request, and a worker whose
engine stops has its tasks rescheduled while the app keeps answering from the rest (bound: RESCHEDULE_S)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cluster import GPU_NODE, Cluster
from gradio_client import Client
from polling import wait_until
from swarmkit import Load, ManagerPlatform, gradio_twin, node_names, tasks_of

from spaces_runtime.gateway.affinity import COOKIE, key

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]  # the first test may wait for the platform
RESCHEDULE_S = 120  # node seen down (2 s heartbeats), task placed elsewhere, image pulled, app healthy
WAIT_SEEN_S = 120  # from the twin's reschedule: 3 failed health checks 10 s apart, the service removed, a start
BACK_S = 240  # the engine's start, the next try (backoff up to 60 s), the task's start and health check
CLASSIFIER = "examples/image-classifier"  # a runner app: pinned to the GPU node, the runner's


def task_urls(cluster: Cluster, space_id: str) -> dict[str, str]:
    """Each running task's direct address → its container's hostname (the first 12 digits of its id)."""
    client = cluster.manager.client()
    addresses = {n.id: n.attrs["Status"]["Addr"] for n in client.nodes.list()}
    found = {}
    for task in tasks_of(client, space_id):
        port = task["Status"]["PortStatus"]["Ports"][0]["PublishedPort"]
        found[f"http://{addresses[task['NodeID']]}:{port}"] = task["Status"]["ContainerStatus"]["ContainerID"][:12]
    return found


def served_by(platform: ManagerPlatform, cookies: dict[str, str] | None = None) -> str:
    response = httpx.get(f"{platform.url}/spaces/tests/twin/config", cookies=cookies, timeout=10)
    response.raise_for_status()
    return response.text.split("served by ", 1)[1][:12]


def test_two_replicas_run_on_two_nodes_and_both_serve(platform: ManagerPlatform, cluster: Cluster) -> None:
    client = cluster.manager.client()
    nodes = node_names(client)
    tasks = tasks_of(client, "tests/twin")
    assert len(tasks) == 2 and len({nodes[t["NodeID"]] for t in tasks}) == 2, tasks
    urls = task_urls(cluster, "tests/twin")
    for url, hostname in urls.items():  # each task serves on its own
        assert f"served by {hostname}" in httpx.get(f"{url}/spaces/tests/twin/config", timeout=10).text
    seen = {served_by(platform) for _ in range(6)}  # new visitors are spread over both
    assert seen == set(urls.values()), (seen, urls)


def test_a_visitor_stays_on_one_task(platform: ManagerPlatform, cluster: Cluster) -> None:
    urls = task_urls(cluster, "tests/twin")
    with httpx.Client(timeout=10) as visitor:  # the cookie of the first answer keeps it there
        first = visitor.get(f"{platform.url}/spaces/tests/twin/config").text.split("served by ", 1)[1][:12]
        for _ in range(8):
            assert f"served by {first}" in visitor.get(f"{platform.url}/spaces/tests/twin/config").text
    for url, hostname in urls.items():
        assert served_by(platform, {COOKIE: key(url)}) == hostname
    for _ in range(4):  # Gradio's queue: join on one request, results on another stream; both must reach one task
        answer = Client(f"{platform.url}/spaces/tests/twin/", verbose=False).predict("hi", api_name="/who")
        assert answer.startswith("v1 from ") and answer.removeprefix("v1 from ") in urls.values()
    lit = task_urls(cluster, "tests/lit")
    assert len(lit) == 2
    for url, hostname in lit.items():  # Streamlit's WebSocket goes where the visitor's cookie says
        _, seen = streamlit_run_pinned(f"{platform.url}/spaces/tests/lit/", key(url))
        assert f"served by {hostname}".encode() in seen


def streamlit_run_pinned(url: str, cookie: str) -> tuple[set[str], bytes]:
    """A browser's script run over the app's WebSocket, sent with the replica cookie ``cookie``."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    kinds: set[str] = set()
    seen = b""
    with connect(url.replace("http://", "ws://") + "_stcore/stream", subprotocols=["streamlit"],  # type: ignore[list-item]
                 additional_headers={"Cookie": f"{COOKIE}={cookie}"}, open_timeout=10) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        ws.send(msg.SerializeToString())
        while "script_finished" not in kinds:
            raw = ws.recv(timeout=60)
            forward = ForwardMsg()
            forward.ParseFromString(raw)
            kinds.add(str(forward.WhichOneof("type")))
            seen += raw if isinstance(raw, bytes) else raw.encode()
    return kinds, seen


def test_a_redeploy_under_steady_load_fails_no_request(platform: ManagerPlatform, cluster: Cluster,
                                                       tmp_path: Path) -> None:
    with Load(f"{platform.url}/spaces/tests/twin/config") as load:
        platform.cli("deploy", str(gradio_twin(tmp_path / "twin", "v2")), "--name", "tests/twin", check=True,
                     timeout=900)
        wait_until(lambda: all("v2 served" in httpx.get(f"{platform.url}/spaces/tests/twin/config", timeout=10).text
                               for _ in range(4)), 120, "every task to serve v2", interval=0.5)
        wait_until(lambda: len(tasks_of(cluster.manager.client(), "tests/twin")) == 2, 120,
                   "the rolling update to finish with 2 tasks", interval=0.5)
    assert load.done > 50 and load.failures == [], (load.done, load.failures[:5])


def test_drain_moves_apps_off_a_node_without_a_failed_request(platform: ManagerPlatform, cluster: Cluster) -> None:
    client = cluster.manager.client()
    nodes = node_names(client)
    # a node of twin's that is not the model runner's: a runner app pinned there could go nowhere else
    twin_nodes = [t["NodeID"] for t in tasks_of(client, "tests/twin")]
    busy = nodes[next((n for n in twin_nodes if client.nodes.get(n).attrs["Spec"].get("Labels", {}).get(
        "spaces-runtime.runner") != "1"), twin_nodes[0])]
    with Load(f"{platform.url}/spaces/tests/twin/config") as load:
        drained = platform.cli("nodes", "drain", busy, check=True)
        assert "tests/twin" in drained.stdout

        def off() -> bool:
            return all(nodes[t["NodeID"]] != busy for s in ("tests/twin", "tests/lit") for t in tasks_of(client, s)) \
                and len(tasks_of(client, "tests/twin")) == 2
        wait_until(off, 180, f"every task to leave {busy}", interval=0.5)
    assert load.done > 20 and load.failures == [], (load.done, load.failures[:5])
    listed = {n["name"]: n for n in __import__("json").loads(platform.cli("nodes", "--json", check=True).stdout)}
    assert listed[busy]["availability"] == "drain" and listed[busy]["apps"] == []
    assert set(listed) == {"spt-mgr", "spt-w1", "spt-w2"}
    platform.cli("nodes", "activate", busy, check=True)


def test_a_stopped_worker_engine_has_its_tasks_rescheduled(platform: ManagerPlatform, cluster: Cluster) -> None:
    """The GPU node's engine stops: tests/twin's task there moves and the app keeps answering; the classifier,
    pinned to that node with its /data, waits for it (its status says why), and once the engine is back it
    serves again by itself, with no `spaces restart`."""
    client = cluster.manager.client()
    nodes = node_names(client)
    worker = cluster.node(GPU_NODE)
    # the drain before moved twin's tasks off a non-runner node: one of them is on the GPU node now
    assert any(nodes[t["NodeID"]] == worker.netns for t in tasks_of(client, "tests/twin")), \
        f"no task of tests/twin runs on {worker.netns}"
    assert [nodes[t["NodeID"]] for t in tasks_of(client, CLASSIFIER)] == [worker.netns]
    cluster.stop_engine(worker)
    try:
        def rescheduled() -> bool:
            running = [t for t in tasks_of(client, "tests/twin") if nodes[t["NodeID"]] != worker.netns]
            return len(running) == 2 and httpx.get(f"{platform.url}/spaces/tests/twin/config", timeout=10
                                                   ).status_code == 200
        wait_until(rescheduled, RESCHEDULE_S, f"tests/twin's tasks to leave {worker.netns}", interval=0.5,
                   ignoring=(httpx.HTTPError,))
        for _ in range(6):
            assert "served by" in httpx.get(f"{platform.url}/spaces/tests/twin/config", timeout=10).text
        # its health checks fail (3 x 10 s), its service goes, and its next start finds the node down
        def says_it_waits() -> str:
            space = platform.space(CLASSIFIER)
            error = space.get("error") or ""
            return error if space["stage"] == "APP_STARTING" and f"waiting for node {worker.netns}" in error else ""
        said = wait_until(says_it_waits, WAIT_SEEN_S, f"{CLASSIFIER} to say it waits for {worker.netns}",
                          interval=0.5)
        assert "starts again by itself" in said, said
    finally:
        cluster.start_engine(worker)
    wait_until(lambda: platform.space(CLASSIFIER)["stage"] == "RUNNING", BACK_S,
               f"{CLASSIFIER} to serve again by itself once {worker.netns} is back", interval=0.5)
    assert [nodes[t["NodeID"]] for t in tasks_of(client, CLASSIFIER)] == [worker.netns], "its /data is there"
