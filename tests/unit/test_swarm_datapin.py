"""Pinning a single-replica space's /data to a node: the constraint evaluator, the choice, and what a launch says
when the node that holds the data cannot run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.errors import BackendError, NodeUnavailableError
from spaces_runtime.swarm import datamove
from spaces_runtime.swarm.datapin import (
    DATA_NODE_LABEL,
    Candidate,
    ConstraintError,
    candidate,
    choose,
    decide,
    pinned_config,
    pinned_to,
    problem,
    repinned_spec,
    satisfies,
)
from spaces_runtime.swarm.pinning import DataPins, Pin, PinBook

GPU = "node.labels.spaces-runtime.gpus!=0"
RUNNER = "node.labels.spaces-runtime.runner==1"


def nodes() -> list[Candidate]:
    return [Candidate("m", "mgr", role="manager", labels={"spaces-runtime.gpus": "0", "spaces-runtime.runner": "1"},
                      tasks=3),
            Candidate("a", "w1", labels={"spaces-runtime.gpus": "2"}, tasks=1),
            Candidate("b", "w2", labels={"spaces-runtime.gpus": "0"}, tasks=0),
            Candidate("c", "w3", state="down", tasks=0)]


def test_label_constraints_read_as_swarm_reads_them() -> None:
    manager, gpu, plain, _ = nodes()
    assert satisfies(gpu, [GPU]) and not satisfies(plain, [GPU]) and not satisfies(manager, [GPU])
    assert satisfies(manager, [RUNNER]) and not satisfies(gpu, [RUNNER])  # a missing label equals nothing
    assert satisfies(gpu, ["node.labels.other!=x"]) and not satisfies(gpu, ["node.labels.other==x"])
    assert satisfies(plain, ["node.hostname!=w1", "node.role==worker", "node.id==b"])
    assert satisfies(plain, [])
    with pytest.raises(ConstraintError, match="'node.labels.gpus>1' is neither"):
        satisfies(plain, ["node.labels.gpus>1"])
    with pytest.raises(ConstraintError, match="engine.labels.x==1"):
        satisfies(plain, ["engine.labels.x==1"])


def chosen(found: list[Candidate], constraints: list[str], exclude: tuple[str, ...] = ()) -> str | None:
    node = choose(found, constraints, exclude=exclude)
    return node.name if node is not None else None


def test_the_choice_is_the_usable_fitting_node_with_the_fewest_tasks() -> None:
    assert chosen(nodes(), []) == "w2"  # w3 has fewer tasks but is down
    assert chosen(nodes(), [GPU]) == "w1"
    assert chosen(nodes(), [RUNNER]) == "mgr"
    assert chosen(nodes(), [GPU, RUNNER]) is None
    assert chosen(nodes(), [], exclude=("b",)) == "w1"
    assert chosen([Candidate("x", "x", availability="drain"), Candidate("y", "y", tasks=5)], []) == "y"


def test_a_pin_is_kept_then_taken_from_the_running_task_then_chosen() -> None:
    found = nodes()
    assert decide(replicas=1, remembered="a", running_on="b", nodes=found, constraints=[]).node_id == "a"
    adopted = decide(replicas=1, remembered=None, running_on="m", nodes=found, constraints=[])
    assert adopted.node_id == "m" and "where its task runs" in (adopted.note or "")
    fresh = decide(replicas=1, remembered=None, running_on=None, nodes=found, constraints=[GPU])
    assert fresh.node_id == "a" and "w1" in (fresh.note or "")
    assert decide(replicas=2, remembered="a", running_on="a", nodes=found, constraints=[]).node_id is None
    gone = decide(replicas=1, remembered="zz", running_on=None, nodes=found, constraints=[])
    assert gone.node_id == "b" and "left the swarm" in (gone.note or "")
    with pytest.raises(BackendError, match=r"no ready, active node satisfies .*runner==1.*gpus!=0.*w3 \(down"):
        decide(replicas=1, remembered=None, running_on=None, nodes=found, constraints=[RUNNER, GPU])


def test_a_down_or_drained_pinned_node_says_what_to_do() -> None:
    down = problem(Candidate("c", "w3", state="down"), "alice/notes", [])
    assert isinstance(down, NodeUnavailableError), "a node that is down comes back: the supervisor tries again"
    assert "waiting for node w3, which holds its /data and is down" in str(down)
    assert "starts again by itself once the node is back" in str(down)
    assert "spaces nodes drain w3 --empty-data" in str(down)
    drained = problem(Candidate("c", "w3", availability="drain"), "alice/notes", [])
    assert isinstance(drained, NodeUnavailableError) and "is set to drain" in str(drained)
    unfit = problem(Candidate("b", "w2", labels={"spaces-runtime.gpus": "0"}), "alice/notes", ["node.id==b", GPU])
    assert unfit is not None and not isinstance(unfit, NodeUnavailableError), "waiting would not mend this one"
    assert "does not satisfy" in str(unfit) and "node.id" not in str(unfit).split("satisfy")[1]
    assert problem(Candidate("a", "w1", labels={"spaces-runtime.gpus": "1"}), "alice/notes", [GPU]) is None


def test_the_service_carries_the_pin_as_a_constraint_and_a_label() -> None:
    labels = {"spaces-runtime.space": "alice/notes"}
    config = {"labels": labels, "container_labels": labels, "constraints": [GPU, "node.id==old"]}
    pinned = pinned_config(config, "new")
    assert pinned["constraints"] == [GPU, "node.id==new"]
    assert pinned["labels"][DATA_NODE_LABEL] == "new" and DATA_NODE_LABEL not in labels  # the shared dict is intact
    assert pinned_to({"Labels": pinned["labels"]}) == "new"
    unpinned = pinned_config(pinned, None)
    assert unpinned["constraints"] == [GPU] and DATA_NODE_LABEL not in unpinned["labels"]
    template, moved = repinned_spec({"Placement": {"Constraints": ["node.id==old", RUNNER]}}, pinned["labels"], "b")
    assert template["Placement"]["Constraints"] == [RUNNER, "node.id==b"] and moved[DATA_NODE_LABEL] == "b"


def test_a_node_from_docker_node_inspect() -> None:
    inspected = {"ID": "n1", "Description": {"Hostname": "spt-w1"}, "Status": {"State": "ready"},
                 "Spec": {"Availability": "active", "Role": "worker", "Labels": {"k": "v"}}}
    assert candidate(inspected, 4) == Candidate("n1", "spt-w1", "ready", "active", "worker", {"k": "v"}, 4)


def test_the_pin_book_keeps_pins_across_instances(tmp_path: Path) -> None:
    book = PinBook(tmp_path / "swarm" / "data-nodes.json")
    assert book.get("alice/notes") is None
    book.put("alice/notes", Pin("n1", "vol", "img@sha256:1"))
    book.put("bob/db", Pin("n2", "vol2", "img2"))
    again = PinBook(tmp_path / "swarm" / "data-nodes.json")
    assert again.get("alice/notes") == Pin("n1", "vol", "img@sha256:1")
    assert set(again.all()) == {"alice/notes", "bob/db"}
    again.forget("alice/notes")
    assert book.get("alice/notes") is None
    (tmp_path / "swarm" / "data-nodes.json").write_text("{not json")
    with pytest.raises(BackendError, match="data-nodes.json: unreadable"):
        book.get("bob/db")


def test_the_copy_jobs_run_on_the_two_nodes_and_only_the_receiver_listens() -> None:
    move = datamove.Move("alice/notes", "vol", "reg/app@sha256:1", "old", "new", "10.0.0.3")
    receive = datamove.job_config(move, role="receive", token="t0k", platform="p")
    send = datamove.job_config(move, role="send", token="t0k", platform="p", address="10.0.0.3", port=30001)
    assert receive["constraints"] == ["node.id==new"] and send["constraints"] == ["node.id==old"]
    assert receive["mode"] == {"ReplicatedJob": {}} and receive["image"] == send["image"] == "reg/app@sha256:1"
    assert receive["endpoint_spec"]["Ports"][0]["PublishMode"] == "host" and "endpoint_spec" not in send
    assert send["mounts"][0]["ReadOnly"] is True and not receive["mounts"][0].get("ReadOnly")
    assert "MOVE_TOKEN=t0k" in receive["env"] and {"MOVE_ADDR=10.0.0.3", "MOVE_PORT=30001"} <= set(send["env"])
    compile(receive["command"][2], "receive", "exec")
    compile(send["command"][2], "send", "exec")


def test_a_rollback_after_a_drain_keeps_the_data_s_new_node(tmp_path: Path) -> None:
    """A failed redeploy rolls back to the arguments of the launch before it; a drain since then moved the data."""
    book = PinBook(tmp_path / "data-nodes.json")
    pins = DataPins(None, "p", book)  # current() reads only the book
    old = pinned_config({"labels": {"spaces-runtime.space": "alice/notes"}, "constraints": [GPU]}, "old")
    book.put("alice/notes", Pin("new", "vol", "img"))
    assert pins.current(old, "alice/notes")["constraints"] == [GPU, "node.id==new"]
    two = pinned_config({"labels": {}, "constraints": []}, None)  # several replicas: unpinned, and stays so
    assert pins.current(two, "alice/notes") == two


def test_a_move_in_progress_is_seen_by_the_supervisor(tmp_path: Path) -> None:
    pins = DataPins(None, "p", PinBook(tmp_path / "pins.json"))  # type: ignore[arg-type]  # no engine asked
    assert not pins.is_moving("a/b")
    with pins.moving("a/b"):
        assert pins.is_moving("a/b") and not pins.is_moving("c/d")
    assert not pins.is_moving("a/b")
