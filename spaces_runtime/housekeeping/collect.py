"""The I/O around ``gc``: survey what exists and what is used, remove what the decision says, and the periodic
pass that keeps the platform under its disk budget.

Environments are removed on the event loop, one at a time, after looking again: no record and no build in
progress names the hash (builds are recorded, with their plan's env hash, before they start, and every deploy
begins on this loop), and its build lock (``builder.venv``'s flock) is free. The folder is then renamed aside in
one step, so a deploy that comes after it builds the environment afresh instead of finding half of it; the slow
delete of the renamed folder runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from builder.venv import MARKER, find_uv
from spaces_runtime.config import Settings
from spaces_runtime.housekeeping.gc import Decision, Item, Usage, Verdict, decide, human_bytes
from spaces_runtime.housekeeping.lfsobjects import LfsSurvey, release_lfs, remove_lfs, survey_lfs
from spaces_runtime.store import Store

if TYPE_CHECKING:
    from spaces_runtime.hub.commits import SpaceCommits

log = logging.getLogger(__name__)

_HASH = re.compile(r"^[0-9a-f]{16,128}$")
_SCRATCH = re.compile(r"^\.tmp-([0-9a-f]{16,128})-")
_UV_TIMEOUT_S = 120


class ImageCollector(Protocol):
    """The docker side (``housekeeping.images``): images and build cache of the engine the platform builds on."""

    def survey(self) -> tuple[list[Item], frozenset[str]]: ...

    def remove(self, item: Item) -> int: ...


@dataclass
class Report:
    """A pass: what it decided, and (unless a dry run) what it freed and what could not be removed."""

    dry_run: bool
    decision: Decision
    freed_bytes: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def row(verdict: Verdict) -> dict[str, Any]:
            item = verdict.item
            return {"kind": item.kind, "key": item.key, "bytes": item.bytes, "reason": verdict.reason}

        return {
            "dry_run": self.dry_run,
            "collect": [row(v) for v in self.decision.collected],
            "keep": [row(v) for v in self.decision.kept],
            "bytes_to_free": self.decision.freed_bytes,
            "freed_bytes": self.freed_bytes,
            "total_bytes": self.decision.total_bytes,
            "budget_bytes": self.decision.budget_bytes,
            "failures": self.failures,
            "notes": self.notes,
        }


class Collector:
    def __init__(self, settings: Settings, store: Store, images: ImageCollector | None = None,
                 commits: SpaceCommits | None = None) -> None:
        self.settings = settings
        self.store = store
        self.images = images
        self.commits = commits  # its LFS objects are collected by `spaces gc` (not by the budget's pass)
        self._lock = asyncio.Lock()

    async def run(self, dry_run: bool, budget_bytes: int | None = None) -> Report:
        """One pass: survey, decide, and (unless ``dry_run``) remove. Passes never overlap."""
        async with self._lock:
            items, usage, notes = await asyncio.to_thread(self._survey)
            lfs = LfsSurvey()
            if budget_bytes is None and self.commits is not None and self.commits.enabled:
                lfs = await asyncio.to_thread(survey_lfs, self.commits)
                items += lfs.items
                usage = dataclasses.replace(usage, lfs_refs=lfs.refs, lfs_grace_s=self.settings.lfs_gc_grace_s)
            decision = decide(items, usage, now=time.time(), budget_bytes=budget_bytes,
                              cache_idle_s=self.settings.gc_cache_idle_s)
            report = Report(dry_run, decision, notes=notes)
            if not dry_run:
                for verdict in decision.collected:
                    await self._remove(verdict.item, report)
                await self._prune_uv_cache(report)
                if lfs.released and self.commits is not None:
                    await asyncio.to_thread(release_lfs, self.commits, lfs.released, self.settings.lfs_gc_grace_s)
            return report

    # --- survey ---------------------------------------------------------------------------------------------------
    def _survey(self) -> tuple[list[Item], Usage, list[str]]:
        items = survey_envs(self.settings.envs_dir)
        notes: list[str] = []
        container_images: frozenset[str] = frozenset()
        if self.images is not None:
            found, container_images = self.images.survey()
            items += found
        uv_cache = self.settings.uv_cache_dir
        if uv_cache is not None and uv_cache.is_dir():
            # all of it: what environments share with it by hard links is counted here, not with them
            items.append(Item("uv-cache", str(uv_cache), tree_bytes(uv_cache)[0], time.time(), collectable=False))
        else:
            notes.append("uv's cache is left alone: it is uv's default one, shared with everything else on this "
                         "host (set SPACES_UV_CACHE_DIR to give the platform its own, which gc then prunes)")
        by_env, by_code = claimed(self.store)
        busy = busy_envs(self.settings.envs_dir, {i.key if i.kind == "env" else i.env_hash or ""
                                                  for i in items if i.kind in ("env", "env-scratch")})
        return items, Usage(by_env, by_code, busy, container_images), notes

    # --- removal ----------------------------------------------------------------------------------------------------
    async def _remove(self, item: Item, report: Report) -> None:
        try:
            if item.kind == "env":
                freed = await self._remove_env(item)
            elif item.kind == "env-scratch":
                freed = await self._remove_scratch(item)
            elif item.kind == "lfs-object" and self.commits is not None:
                freed = await asyncio.to_thread(remove_lfs, self.commits, item, self.settings.lfs_gc_grace_s)
            elif self.images is not None:
                freed = -1 if _claimed_image(self.store, item) else await asyncio.to_thread(self.images.remove, item)
            else:
                return
        except (OSError, RuntimeError) as exc:
            report.failures.append(f"{item.kind} {item.key}: {exc}")
            return
        if freed < 0:
            report.failures.append(f"{item.kind} {item.key}: in use again when its turn came; kept")
            return
        report.freed_bytes += freed

    async def _remove_env(self, item: Item) -> int:
        """Bytes freed, or -1 when the environment turned out to be in use after all (checked on this loop)."""
        envs, env_hash = self.settings.envs_dir, item.key
        by_env, _ = claimed(self.store)
        if env_hash in by_env:
            return -1
        folder = envs / env_hash
        with build_lock(envs, env_hash) as free:
            if not free:
                return -1
            doomed = envs / f".tmp-{env_hash}-gc-{time.time_ns()}"
            os.rename(folder, doomed)
        await asyncio.to_thread(shutil.rmtree, doomed, True)
        return item.bytes

    async def _remove_scratch(self, item: Item) -> int:
        folder = self.settings.envs_dir / item.key
        with build_lock(self.settings.envs_dir, item.env_hash or "") as free:
            if not free:
                return -1
            # a build of that hash starting now removes it too (builder.venv: leftovers), and never reuses it
        await asyncio.to_thread(shutil.rmtree, folder, True)
        return item.bytes

    async def _prune_uv_cache(self, report: Report) -> None:
        cache = self.settings.uv_cache_dir
        if cache is None or not cache.is_dir():
            return
        before = tree_bytes(cache)[0]
        try:
            done = await asyncio.to_thread(
                subprocess.run, [find_uv(), "cache", "prune", "--cache-dir", str(cache)], capture_output=True,
                text=True, timeout=_UV_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            report.failures.append(f"uv cache prune: {exc}")
            return
        if done.returncode != 0:
            report.failures.append(f"uv cache prune: {(done.stderr or done.stdout).strip()[-300:]}")
            return
        freed = max(0, before - tree_bytes(cache)[0])
        report.freed_bytes += freed
        report.notes.append(f"uv cache {cache}: pruned {human_bytes(freed)} of dangling entries")


# --- what exists ------------------------------------------------------------------------------------------------
def survey_envs(envs_dir: Path) -> list[Item]:
    """Finished environments (their marker is written last) and scratch folders of builds; lock files and the
    recorded locks (``.locks/``) are not items: they are tiny, and the locks make a rebuild reproducible."""
    items: list[Item] = []
    if not envs_dir.is_dir():
        return items
    for entry in envs_dir.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            continue
        scratch = _SCRATCH.match(entry.name)
        if scratch:
            items.append(Item("env-scratch", entry.name, tree_bytes(entry)[1], _mtime(entry),
                              env_hash=scratch.group(1)))
        elif _HASH.match(entry.name):
            marker = entry / MARKER
            items.append(Item("env", entry.name, tree_bytes(entry)[1], _mtime(marker if marker.exists() else entry)))
    return items


def tree_bytes(root: Path) -> tuple[int, int]:
    """(disk bytes, disk bytes that removing ``root`` frees): a file hard-linked from outside (uv links installed
    files from its cache) is freed only when all its links are inside."""
    seen: dict[tuple[int, int], list[int]] = {}  # (dev, inode) → [links seen here, links in all, bytes]
    for path in _walk(root):
        with contextlib.suppress(OSError):
            info = path.lstat()
            key = (info.st_dev, info.st_ino)
            if key in seen:
                seen[key][0] += 1
            else:
                seen[key] = [1, info.st_nlink, info.st_blocks * 512]
    total = sum(size for _, _, size in seen.values())
    exclusive = sum(size for here, links, size in seen.values() if here >= links)
    return total, exclusive


def _walk(root: Path) -> Iterator[Path]:
    if not root.exists():
        return
    yield root
    for folder, dirs, files in os.walk(root):  # does not follow links
        for name in (*dirs, *files):
            yield Path(folder, name)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- what is used -----------------------------------------------------------------------------------------------
def claimed(store: Store) -> tuple[dict[str, list[str]], dict[tuple[str, str], list[str]]]:
    """Env hashes and (env, code) pairs named by a space's record or by a build still running for it."""
    by_env: dict[str, list[str]] = defaultdict(list)
    by_code: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in store.spaces():
        pairs = [(record.env_hash, record.code_hash)]
        pairs += [(b["env_hash"], b["code_hash"]) for b in store.builds(record.id, limit=5) if b["status"] == "running"]
        for env_hash, code in pairs:
            if env_hash:
                by_env[env_hash].append(record.id)
                if code:
                    by_code[(env_hash, code)].append(record.id)
    return dict(by_env), dict(by_code)


def _claimed_image(store: Store, item: Item) -> bool:
    """Looked at again on the loop just before removing: a deploy that began since the survey names it."""
    return item.kind == "image" and (item.env_hash or "", item.code_hash or "") in claimed(store)[1]


def busy_envs(envs_dir: Path, hashes: set[str]) -> dict[str, str]:
    """Hashes whose build holds its lock, or that a running process was started from (its command line names
    the environment: the platform's apps, their old version still draining, a `spaces run`)."""
    busy: dict[str, str] = {}
    for env_hash in hashes:
        with build_lock(envs_dir, env_hash) as free:
            if not free:
                busy[env_hash] = "being built (its build lock is held)"
    prefixes = {str(envs_dir) + os.sep, str(envs_dir.resolve()) + os.sep}
    for pid, argv in _processes():
        for arg in argv:
            for prefix in prefixes:
                if prefix in arg:
                    env_hash = arg.split(prefix, 1)[1].split(os.sep, 1)[0]
                    if env_hash in hashes:
                        busy.setdefault(env_hash, f"process {pid} runs in it")
    return busy


def _processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            raw = (entry / "cmdline").read_bytes()
            if raw:
                yield int(entry.name), raw.decode(errors="replace").split("\0")


@contextlib.contextmanager
def build_lock(envs_dir: Path, env_hash: str) -> Iterator[bool]:
    """Try the build lock of ``env_hash`` without waiting: True (and held until the block ends) when free. A hash
    with no lock file has never been built here under this builder, so nothing holds it."""
    path = envs_dir / f".{env_hash}.lock"
    if not env_hash or not path.exists():
        yield True
        return
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Housekeeper:
    """The automatic pass: every ``interval_s``, if what the platform keeps is over ``budget_bytes``, the least
    recently used things no space uses go until it fits. Nothing runs without a budget."""

    def __init__(self, collector: Collector, budget_bytes: int | None, interval_s: float) -> None:
        self.collector = collector
        self.budget_bytes = budget_bytes
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.last: Report | None = None

    async def start(self) -> None:
        if self.budget_bytes is not None and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="spaces-housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                self.last = await self.collector.run(dry_run=False, budget_bytes=self.budget_bytes)
                self._announce(self.last)
            except Exception:  # a failed pass must not end housekeeping; the next one tries again
                log.exception("housekeeping pass failed")
            await asyncio.sleep(self.interval_s)  # a schedule, not a synchronisation

    def _announce(self, report: Report) -> None:
        decision = report.decision
        if decision.collected:
            log.info("housekeeping: freed %s (%d items) to fit the disk budget of %s",
                     human_bytes(report.freed_bytes), len(decision.collected), human_bytes(self.budget_bytes or 0))
        if decision.total_bytes - report.freed_bytes > (self.budget_bytes or 0):
            log.warning("housekeeping: %s kept is over the disk budget of %s, and the rest is in use",
                        human_bytes(decision.total_bytes - report.freed_bytes), human_bytes(self.budget_bytes or 0))
        for failure in report.failures:
            log.warning("housekeeping: %s", failure)
