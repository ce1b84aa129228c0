"""Memory, CPU and pids limits with cgroups, v1 (one hierarchy per controller) or v2 (unified).

One cgroup per running instance (a redeploy runs the old and new version side by side), named under
``spaces-runtime/``. The launch chain writes its own pid into each ``cgroup.procs`` before it execs anything of
the app, so every process the app ever starts is counted. The plan (which file gets which value) is pure.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.errors import BackendError

ROOT = Path("/sys/fs/cgroup")
PARENT = "spaces-runtime"
V1_CONTROLLERS = ("memory", "cpu", "pids")
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    cpus: float
    pids: int


@dataclass(frozen=True)
class CgroupPlan:
    dirs: tuple[Path, ...]  # created in order, removed in reverse
    writes: tuple[tuple[Path, str], ...]  # (file, value), in order
    procs: tuple[Path, ...]  # cgroup.procs files the launcher joins
    memory_events: Path  # where the kernel counts OOM kills


def version(root: Path = ROOT) -> int:
    """2 on a unified hierarchy, 1 when the controllers are mounted one per folder."""
    return 2 if (root / "cgroup.controllers").exists() else 1


def plan(name: str, limits: CgroupLimits, cgroup_version: int, root: Path = ROOT,
         has_memsw: bool = False) -> CgroupPlan:
    """The folders and files that give instance ``name`` its limits (pure). No swap: past the memory limit is
    an OOM kill, not a slow crawl."""
    quota = max(1000, int(limits.cpus * CFS_PERIOD_US))
    if cgroup_version == 2:
        parent, own = root / PARENT, root / PARENT / name
        writes = [(root / "cgroup.subtree_control", "+memory +cpu +pids"),
                  (parent / "cgroup.subtree_control", "+memory +cpu +pids"),
                  (own / "memory.max", str(limits.memory_bytes)), (own / "memory.swap.max", "0"),
                  (own / "cpu.max", f"{quota} {CFS_PERIOD_US}"), (own / "pids.max", str(limits.pids))]
        return CgroupPlan((parent, own), tuple(writes), (own / "cgroup.procs",), own / "memory.events")
    dirs: list[Path] = []
    for controller in V1_CONTROLLERS:
        dirs += [root / controller / PARENT, root / controller / PARENT / name]
    mem, cpu, pids = (root / c / PARENT / name for c in V1_CONTROLLERS)
    writes = [(mem / "memory.limit_in_bytes", str(limits.memory_bytes))]
    if has_memsw:
        writes.append((mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes)))
    writes += [(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US)), (cpu / "cpu.cfs_quota_us", str(quota)),
               (pids / "pids.max", str(limits.pids))]
    procs = tuple(d / "cgroup.procs" for d in (mem, cpu, pids))
    return CgroupPlan(tuple(dirs), tuple(writes), procs, mem / "memory.oom_control")


def oom_kills(text: str) -> int:
    """The ``oom_kill N`` count of memory.oom_control (v1) or memory.events (v2) (pure)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


class Cgroup:
    """One instance's cgroup(s) on this host."""

    def __init__(self, cgroup_plan: CgroupPlan) -> None:
        self.plan = cgroup_plan

    @classmethod
    def create(cls, name: str, limits: CgroupLimits, root: Path = ROOT) -> Cgroup:
        v = version(root)
        memsw = v == 1 and (root / "memory" / "memory.memsw.limit_in_bytes").exists()
        made = cls(plan(name, limits, v, root, has_memsw=memsw))
        try:
            for folder in made.plan.dirs:
                folder.mkdir(exist_ok=True)
            for path, value in made.plan.writes:
                if path.name == "cgroup.subtree_control" and _enabled(path, value):
                    continue
                path.write_text(value)
        except OSError as exc:
            made.remove()
            raise BackendError(f"cannot set the app's limits in {exc.filename}: {exc.strerror}",
                               hint="`spaces doctor` shows which cgroup controllers this host lets the platform "
                                    "use") from None
        return made

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.plan.procs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in procs.read_text().split())
        return sorted(found)

    def signal_all(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def oom_killed(self) -> bool:
        with contextlib.suppress(OSError):
            return oom_kills(self.plan.memory_events.read_text()) > 0
        return False

    def remove(self) -> None:
        """Only the instance's own folders go (the shared parents stay); a folder with processes left stays."""
        for folder in reversed(self.plan.dirs):
            if folder.name != PARENT:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def leftovers(prefix: str, root: Path = ROOT) -> list[Path]:
    """Instance cgroups named ``prefix*`` (a previous run of this platform), in every hierarchy."""
    parents = [root / PARENT] if version(root) == 2 else [root / c / PARENT for c in V1_CONTROLLERS]
    return [d for p in parents if p.is_dir() for d in p.iterdir() if d.is_dir() and d.name.startswith(prefix)]


def _enabled(path: Path, value: str) -> bool:
    with contextlib.suppress(OSError):
        have = set(path.read_text().split())
        return all(v.lstrip("+") in have for v in value.split())
    return False
