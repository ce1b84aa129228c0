from spaces_runtime.runner.catalog import uses_runner
from spaces_runtime.swarm.nodes import NodeView
from spaces_runtime.swarm.runnerplace import RUNNER_CONSTRAINT, app_constraints, runner_nodes


def node(name: str, role: str, gpus: int, ready: bool) -> NodeView:
    return NodeView(name=name, role=role, state="ready" if ready else "down", availability="active",
                    address="10.0.0.1", cpus=2.0, memory_bytes=2**30, gpus=gpus, apps=[])


def test_runners_go_on_every_ready_gpu_node_not_the_cpu_manager() -> None:
    nodes = [node("m", "manager", 0, True), node("g1", "worker", 2, True),
             node("g2", "worker", 1, False), node("c", "worker", 0, True)]
    assert runner_nodes(nodes) == {"g1"}


def test_without_a_gpu_the_manager_runs_the_runner() -> None:
    nodes = [node("m", "manager", 0, True), node("w", "worker", 0, True)]
    assert runner_nodes(nodes) == {"m"}


def test_an_app_naming_a_runner_model_is_pinned_to_runner_nodes_others_run_anywhere() -> None:
    assert uses_runner(["sentence-transformers/all-MiniLM-L6-v2"], [])
    assert uses_runner(["snakers4/silero-vad"], [])
    assert uses_runner([], ["tiny-classifier"])
    assert not uses_runner(["gpt2", "openai/whisper-tiny"], [])
    assert app_constraints(needs_runner=True, has_runner_nodes=True) == [RUNNER_CONSTRAINT]
    assert app_constraints(needs_runner=False, has_runner_nodes=True) == []
    assert app_constraints(needs_runner=True, has_runner_nodes=False) == []
