"""When the docker backend can give /data a disk with a quota, and when it must say why not (pure)."""

from __future__ import annotations

from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.supervisor.dockerdata import why_not


def test_disks_need_a_quota_the_engines_host_and_root(tmp_path: Path) -> None:
    settings = Settings(backend="docker", data_dir=tmp_path, sandbox_data_quota_mb=64)
    assert why_not(settings, in_container=False, euid=0) is None
    assert "runs in a container" in (why_not(settings, in_container=True, euid=0) or "")
    assert "uid 1001" in (why_not(settings, in_container=False, euid=1001) or "")
    off = Settings(backend="docker", data_dir=tmp_path, sandbox_data_quota_mb=0)
    assert why_not(off, in_container=False, euid=0) == "SPACES_SANDBOX_DATA_QUOTA_MB is 0"
