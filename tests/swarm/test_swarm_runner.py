"""The model runner on the swarm: a global service on the GPU node (w1, cluster.py), reached by the apps placed
beside it through the node's runner volume, as themselves (their token, a Docker secret); the platform's
/api/models and /metrics name the node each model is on; other apps run anywhere without the runner."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from cluster import Cluster
from gradio_client import Client, handle_file
from polling import wait_until
from swarmkit import ManagerPlatform, node_names, tasks_of

from example_checks import streamlit_script_run, voiced_clip
from spaces_runtime.swarm.kit import KIT_MOUNT
from spaces_runtime.swarm.runnerplace import RUNNER_CONSTRAINT, RUNNER_MOUNT, SOCKET, TOKEN_KEY

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]
CLASSIFIER = "examples/image-classifier"
RUNNER_APPS = (CLASSIFIER, "examples/semantic-search", "examples/speech-finder")  # all pinned to w1
# run inside the classifier's task: the client from the node's runner volume, with a token given on the command
# line (empty: none), asks the runner who it is
WHO = """
import json, os, sys
from spaces_runtime.client import Runner
from spaces_runtime.errors import SpacesError
if sys.argv[1:]:  # another token, or none at all
    os.environ.pop("SPACES_RUNNER_TOKEN")
try:
    app = Runner(token=sys.argv[1] if sys.argv[1:] else None).status()["app"]
    print(json.dumps({"app": app, "client": sys.modules["spaces_runtime"].__file__}))
except SpacesError as exc:
    print(json.dumps({"refused": type(exc).__name__, "message": str(exc)}))
"""


@pytest.fixture(scope="module", autouse=True)
def classifier_serves(platform: ManagerPlatform, cluster: Cluster) -> None:
    """The runner examples are pinned to w1, the runner node, whose engine test_swarm_replicas stops and starts
    again: wait for them (they start again by themselves) and for w1's runner to serve."""
    for space_id in RUNNER_APPS:
        wait_until(lambda space_id=space_id: platform.space(space_id)["stage"] == "RUNNING"
                   and len(tasks_of(cluster.manager.client(), space_id)) == 1, 600, f"{space_id} to serve",
                   interval=0.5)
    # and its runner: after w1's engine came back, the runner task starts beside the app (torch's import: tens of
    # seconds on 2 cores), and the app's first calls until then say no runner answers
    wait_until(lambda: any(m["name"] == "shapes" and m["node"] == "spt-w1" for m in httpx.get(
        f"{platform.url}/api/models", timeout=30).json()), 300, "w1's runner to answer with the classifier's model",
        interval=0.5, ignoring=(httpx.HTTPError,))


def classifier_task(cluster: Cluster) -> tuple[str, dict]:
    client = cluster.manager.client()
    tasks = tasks_of(client, CLASSIFIER)
    assert len(tasks) == 1, tasks
    return node_names(client)[tasks[0]["NodeID"]], tasks[0]


def in_task(cluster: Cluster, node: str, task: dict, *args: str) -> dict:
    """Run WHO in the task's container, on its own node's engine, as the app's user with the app's environment."""
    container = task["Status"]["ContainerStatus"]["ContainerID"]
    engine = cluster.node(node.removeprefix("spt-"))
    out = engine.docker("exec", container, "/bin/sh", "-c",
                        'for f in /run/secrets/*; do export "${f##*/}=$(cat "$f")"; done; exec python -c "$0" "$@"',
                        WHO, *args)
    return json.loads(out.strip().splitlines()[-1])


def test_a_runner_app_runs_on_the_gpu_node_and_classifies_through_its_runner(platform: ManagerPlatform,
                                                                              cluster: Cluster) -> None:
    node, task = classifier_task(cluster)
    assert node == "spt-w1"  # the GPU node: the one runner of this swarm
    spec = task["Spec"]["ContainerSpec"]
    assert RUNNER_CONSTRAINT in task["Spec"]["Placement"]["Constraints"]
    runner_mount = next(m for m in spec["Mounts"] if m["Target"] == RUNNER_MOUNT)
    assert runner_mount.get("ReadOnly") is True
    env = dict(e.split("=", 1) for e in spec.get("Env") or [])
    assert env["SPACES_RUNNER_URL"] == f"unix://{SOCKET}"
    assert TOKEN_KEY not in env  # the app's token is a Docker secret, not in the service's spec
    kinds, rendered = streamlit_script_run(platform.example_url("image-classifier"), timeout=120)
    assert "script_finished" in kinds and b"Traceback" not in rendered
    assert b"Prediction: circle" in rendered  # the example's own CNN, uploaded at deploy to w1's runner


def test_the_examples_on_the_runner_s_built_in_models_answer_from_w1(platform: ManagerPlatform, cluster: Cluster,
                                                                      tmp_path: Path) -> None:
    """semantic-search (MiniLM) and speech-finder (Silero VAD) on the GPU node's runner, as on the other
    backends (tests/integration/test_runner_apps.py compares the same answers with the models run in-process)."""
    names = node_names(cluster.manager.client())
    for space_id in RUNNER_APPS:
        assert [names[t["NodeID"]] for t in tasks_of(cluster.manager.client(), space_id)] == ["spt-w1"], space_id
    result = Client(platform.example_url("semantic-search"), verbose=False).predict(
        "which insect dances to tell others where food is?", 3, api_name="/search")
    rows = result["data"] if isinstance(result, dict) else result
    assert rows[0][0].startswith("Honey bees communicate"), rows
    wav = tmp_path / "clip.wav"
    voiced_clip(wav)
    summary, table = Client(platform.example_url("speech-finder"), verbose=False).predict(
        handle_file(str(wav)), 0.5, api_name="/find")
    spans = table["data"] if isinstance(table, dict) else table
    assert "in 3.0 s of audio" in summary and spans, summary
    assert 0.8 <= float(spans[0][0]) <= 1.3 and 1.7 <= float(spans[-1][1]) <= 2.3  # speech sits in the middle


def test_models_and_metrics_name_the_node_of_each_runner(platform: ManagerPlatform, cluster: Cluster) -> None:
    streamlit_script_run(platform.example_url("image-classifier"), timeout=120)  # at least one prediction
    models = httpx.get(f"{platform.url}/api/models", timeout=30).json()
    shapes = [m for m in models if m["name"] == "shapes"]
    assert [m["node"] for m in shapes] == ["spt-w1"], models
    assert shapes[0]["task"] == "image-classification"
    listed = [line.split() for line in platform.cli("models", check=True).stdout.splitlines()]
    assert any(row[0] == "shapes" and row[-1] == "spt-w1" for row in listed if row), listed
    metrics = httpx.get(f"{platform.url}/metrics", timeout=30).text
    requests = [line for line in metrics.splitlines()
                if line.startswith('spaces_runner_requests_total{model="shapes",node="spt-w1"}')]
    assert requests and int(float(requests[0].split()[-1])) >= 1, metrics[-2000:]
    assert metrics.count("# TYPE spaces_runner_requests_total counter") == 1


def test_the_runner_knows_the_app_by_its_own_token_and_refuses_others(platform: ManagerPlatform,
                                                                      cluster: Cluster) -> None:
    node, task = classifier_task(cluster)
    own = in_task(cluster, node, task)
    assert own["app"] == CLASSIFIER  # who it is comes from the token the platform signed, not from a claim
    assert own["client"].startswith(f"{KIT_MOUNT}/")  # the kit from the swarm's configs
    forged = in_task(cluster, node, task, "examples/sentiment.0123456789abcdef0123456789abcdef")
    assert forged["refused"] == "RunnerAuthError" and "not valid" in forged["message"], forged
    none = in_task(cluster, node, task, "")
    assert none["refused"] == "RunnerAuthError" and "sent none" in none["message"], none


def test_an_app_that_names_no_runner_model_runs_without_it(platform: ManagerPlatform, cluster: Cluster) -> None:
    # tests/twin: 2 replicas, unpinned, so one of its tasks runs whatever test_swarm_replicas stopped before
    task = wait_until(lambda: next(iter(tasks_of(cluster.manager.client(), "tests/twin")), None), 120,
                      "a running task of tests/twin", interval=0.5)
    spec = task["Spec"]["ContainerSpec"]
    env = dict(e.split("=", 1) for e in spec.get("Env") or [])
    assert "SPACES_RUNNER_URL" not in env and TOKEN_KEY not in env
    assert all(m["Target"] != RUNNER_MOUNT for m in spec.get("Mounts") or [])
    assert RUNNER_CONSTRAINT not in (task["Spec"].get("Placement") or {}).get("Constraints", [])
    # yet `import spaces` works, as on Hugging Face: the shim reaches every task as configs
    kit = {c["File"]["Name"] for c in spec.get("Configs") or []}
    assert f"{KIT_MOUNT}/spaces/__init__.py" in kit and env["PYTHONPATH"].split(":")[0] == KIT_MOUNT
