"""The Docker backend's pure decisions: tier limits scaled to the host, the hardened container config, exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.errors import BackendError
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.docker import container_config, describe_exit, runtime_env
from spaces_runtime.supervisor.tiers import MIB, TIERS, Limits, limits_for

GIB = 1024 * MIB
SPEC = LaunchSpec(space_id="alice/demo", sdk="gradio", app_dir=Path("/x"), app_file="app.py",
                  base_path="/spaces/alice/demo/", env={"SPACE_HOST": "alice-demo.localhost"},
                  image="spaces-runtime/app:abc")


def test_cpu_basic_scales_to_a_small_host() -> None:
    limits = limits_for("cpu-basic", TIERS, host_cpus=2, host_memory=24 * GIB, host_gpus=0)
    assert limits.nano_cpus == 2_000_000_000
    assert limits.memory_bytes == 12 * GIB and limits.memory_label == "12g"  # half the host, not 16 GB
    big = limits_for("cpu-basic", TIERS, host_cpus=64, host_memory=512 * GIB, host_gpus=0)
    assert big.nano_cpus == 2_000_000_000 and big.memory_label == "16g"


def test_gpu_tier_gets_gpus_only_when_the_host_has_them() -> None:
    assert limits_for("t4-small", TIERS, 8, 64 * GIB, host_gpus=0).gpus == 0
    with_gpu = limits_for("t4-small", TIERS, 8, 64 * GIB, host_gpus=2)
    assert with_gpu.gpus == 1
    config = container_config(SPEC, with_gpu, network="n", volume="v", platform="p", generation=1)
    assert config["device_requests"][0]["Count"] == 1


def test_unknown_tier_names_the_known_ones() -> None:
    with pytest.raises(BackendError, match="'cpu-huge' is not one of .*cpu-basic"):
        limits_for("cpu-huge", TIERS, 2, GIB, 0)


def test_container_is_hardened() -> None:
    limits = Limits(nano_cpus=10**9, memory_bytes=512 * MIB, pids=256, gpus=0)
    config = container_config(SPEC, limits, network="spaces-runtime", volume="vol", platform="p1",
                              generation=1764000000123456789)
    assert config["user"] == "1000:1000" and config["cap_drop"] == ["ALL"] and config["read_only"]
    assert config["security_opt"] == ["no-new-privileges:true"]
    assert config["mem_limit"] == config["memswap_limit"] == 512 * MIB and config["pids_limit"] == 256
    assert config["volumes"] == {"vol": {"bind": "/data", "mode": "rw"}} and "/tmp" in config["tmpfs"]
    assert "ports" not in config and "privileged" not in config and "device_requests" not in config
    assert config["labels"]["spaces-runtime.space"] == "alice/demo"
    assert config["labels"]["spaces-runtime.platform"] == "p1"
    assert config["labels"]["spaces-runtime.generation"] == "1764000000123456789"
    assert "mounts" not in config  # no working directory known: nothing is mounted over the image's root


def test_the_apps_own_folder_is_a_writable_volume_filled_from_the_image() -> None:
    limits = Limits(nano_cpus=10**9, memory_bytes=512 * MIB, pids=256, gpus=0)
    config = container_config(SPEC, limits, network="n", volume="v", platform="p", generation=1,
                              workdir="/home/user/app")
    assert config["read_only"] and [dict(m) for m in config["mounts"]] == [
        {"Target": "/home/user/app", "Source": None, "Type": "volume", "ReadOnly": False}]


def test_runtime_env_tells_the_app_its_path_prefix() -> None:
    env = runtime_env(SPEC)
    assert env["GRADIO_ROOT_PATH"] == "/spaces/alice/demo"
    assert env["STREAMLIT_SERVER_BASE_URL_PATH"] == "spaces/alice/demo"
    assert env["SPACE_HOST"] == "alice-demo.localhost" and env["SPACE_ID"] == "alice/demo"


def test_exit_descriptions() -> None:
    oom = describe_exit({"ExitCode": 137, "OOMKilled": True}, "256m")
    assert oom.oom and oom.reason == "out of memory (limit 256m)"
    assert describe_exit({"ExitCode": 1}, "1g").reason == "exited with code 1"
    assert describe_exit({"ExitCode": 143}, "1g").reason == "killed by signal 15 (exit code 143)"
