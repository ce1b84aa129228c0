"""Housekeeping on real folders, a real store, real locks and processes — no server: what `spaces gc` collects
from an envs dir, and a backup restored into another data dir."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import wait_until_async

from spaces_runtime.config import Settings
from spaces_runtime.errors import ConflictError
from spaces_runtime.housekeeping.backup import restore, write_backup
from spaces_runtime.housekeeping.collect import Collector, Housekeeper
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store

OLD, USED, BUILDING, LOCKED, RUNS = (c * 64 for c in "abcde")


def make_env(envs: Path, env_hash: str, payload: int = 64 * 1024) -> Path:
    folder = envs / env_hash
    (folder / "bin").mkdir(parents=True)
    (folder / "lib.bin").write_bytes(os.urandom(payload))
    (folder / ".spaces-env.json").write_text("{}")
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def running_app(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A process started from the interpreter of environment RUNS, as the process backend starts apps."""
    folder = make_env(settings.envs_dir, RUNS)
    (folder / "bin" / "python").symlink_to(sys.executable)
    process = subprocess.Popen([str(folder / "bin" / "python"), "-c", "import time; time.sleep(300)"])
    yield process
    process.kill()
    process.wait()


async def test_gc_collects_what_no_space_build_lock_or_process_uses(settings: Settings,
                                                                   running_app: subprocess.Popen[bytes]) -> None:
    envs = settings.envs_dir
    store = Store(settings.db_path)
    store.create_or_touch("me/app", Stage.BUILDING, "test")
    store.update("me/app", env_hash=USED, code_hash="c1")
    store.create_or_touch("me/next", Stage.BUILDING, "test")
    store.start_build("me/next", BUILDING, "c2")  # a deploy in progress reuses or builds this one
    for env_hash in (OLD, USED, BUILDING, LOCKED):
        make_env(envs, env_hash)
    cache = settings.data_dir / "uv-cache-like"
    cache.mkdir()
    (cache / "wheel-file").write_bytes(os.urandom(256 * 1024))
    os.link(cache / "wheel-file", envs / OLD / "linked-from-cache")  # as uv installs: freed only with the cache
    scratch = envs / f".tmp-{OLD}-crashed"
    scratch.mkdir()
    (scratch / "half").write_bytes(b"x" * 10_000)
    with open(envs / f".{LOCKED}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a build of LOCKED holds its lock, as builder.venv does
        collector = Collector(settings, store)
        dry = (await collector.run(dry_run=True)).as_json()
        assert {row["key"] for row in dry["collect"]} == {OLD, scratch.name}
        kept = {row["key"]: row["reason"] for row in dry["keep"]}
        assert kept[USED] == "the environment of me/app"
        assert kept[BUILDING] == "the environment of me/next"
        assert kept[LOCKED] == "being built (its build lock is held)"
        assert kept[RUNS] == f"process {running_app.pid} runs in it"
        old_bytes = next(row["bytes"] for row in dry["collect"] if row["key"] == OLD)
        assert 64 * 1024 <= old_bytes < 256 * 1024  # the hard-linked file is not counted as freed
        assert (envs / OLD).is_dir()  # a dry run removes nothing

        done = await collector.run(dry_run=False)
    assert not (envs / OLD).exists() and not scratch.exists()
    assert all((envs / h).is_dir() for h in (USED, BUILDING, LOCKED, RUNS))
    assert done.freed_bytes == dry["bytes_to_free"] and done.failures == []
    assert (cache / "wheel-file").stat().st_nlink == 1  # uv's copy stays
    assert not [p for p in envs.iterdir() if p.name.startswith(".tmp-")]  # nothing left renamed aside
    store.close()


async def test_over_the_budget_the_automatic_pass_removes_unused_environments(settings: Settings) -> None:
    store = Store(settings.db_path)
    store.create_or_touch("me/app", Stage.BUILDING, "test")
    store.update("me/app", env_hash=USED)
    make_env(settings.envs_dir, USED)
    make_env(settings.envs_dir, OLD)
    keeper = Housekeeper(Collector(settings, store), budget_bytes=1, interval_s=0.2)
    await keeper.start()
    try:
        await wait_until_async(lambda: not (settings.envs_dir / OLD).exists(), timeout=30,
                               what="the automatic pass to remove the unused environment")
    finally:
        await keeper.stop()
    assert not (settings.envs_dir / OLD).exists()
    assert (settings.envs_dir / USED).is_dir()  # over the budget still, but in use
    store.close()


def populate(settings: Settings) -> Store:
    store = Store(settings.db_path)
    code = settings.apps_dir / "me" / "app" / "versions" / "17" / "inner"
    code.mkdir(parents=True)
    (code / "app.py").write_text("print('hello')\n")
    (code / "README.md").write_text("---\nsdk: gradio\n---\n")
    store.create_or_touch("me/app", Stage.BUILDING, "test")
    store.set_stage("me/app", Stage.APP_STARTING, "test")
    store.set_stage("me/app", Stage.RUNNING, "test")
    store.update("me/app", env_hash=USED, code_hash="c1", code_dir=str(code))
    store.create_or_touch("me/new", Stage.BUILDING, "its first build")
    store.start_build("me/new", OLD, "c2")
    (settings.envs_dir / ".locks").mkdir(parents=True)
    (settings.envs_dir / ".locks" / f"{USED}.txt").write_text("gradio==6.31.0\n")
    (settings.data_dir / "logs" / "me" / "app").mkdir(parents=True)
    (settings.data_dir / "logs" / "me" / "app" / "run.log").write_text("started\n")
    (settings.data_dir / "token").write_text("secret-token")
    return store


@pytest.mark.parametrize("form", ["backup.tar.gz", "backup-folder"])
def test_a_backup_restored_into_another_data_dir_points_at_its_own_code(settings: Settings, tmp_path: Path,
                                                                       form: str) -> None:
    store = populate(settings)
    summary = write_backup(settings, tmp_path / form, logs=True)
    store.close()
    assert sorted(summary.spaces) == ["me/app", "me/new"]
    if form.endswith(".tar.gz"):
        assert oct((tmp_path / form).stat().st_mode & 0o777) == "0o600"  # it holds the token
        with tarfile.open(tmp_path / form) as tar:
            assert not [n for n in tar.getnames() if "/envs/" in f"/{n}" and ".locks" not in n]

    fresh = tmp_path / "elsewhere" / "data"
    restored = restore(tmp_path / form, fresh)
    assert any("rebuilds each one" in note for note in restored.notes)
    assert any("me/new" in note and "deploy it again" in note for note in restored.notes)
    again = Store(fresh / "spaces.db")
    app, new = again.get("me/app"), again.get("me/new")
    assert app.code_dir == str(fresh.resolve() / "apps/me/app/versions/17/inner")
    assert (Path(app.code_dir) / "app.py").read_text() == "print('hello')\n"
    assert app.stage == Stage.RUNNING and app.env_hash == USED
    assert new.stage == Stage.BUILD_ERROR and "first build" in (new.error or "")
    assert [b["status"] for b in again.builds("me/new")] == ["interrupted"]
    again.close()
    assert (fresh / "envs" / ".locks" / f"{USED}.txt").read_text() == "gradio==6.31.0\n"
    assert (fresh / "logs" / "me" / "app" / "run.log").read_text() == "started\n"
    assert oct((fresh / "token").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConflictError, match="already holds a platform"):
        restore(tmp_path / form, fresh)


def test_the_store_snapshot_is_consistent_while_the_platform_writes(settings: Settings, tmp_path: Path) -> None:
    store = populate(settings)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            store.record_visit("me/app")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        write_backup(settings, tmp_path / "live", logs=False)
    finally:
        stop.set()
        writer.join()
        store.close()
    copy = sqlite3.connect(tmp_path / "live" / "spaces.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT COUNT(*) FROM spaces").fetchone()[0] == 2
    copy.close()


async def test_a_uv_cache_of_the_platforms_own_is_measured_and_pruned_by_uv(tmp_path: Path) -> None:
    cache = tmp_path / "uv-cache"
    cache.mkdir()
    (cache / "some-entry").write_bytes(os.urandom(8192))
    settings = Settings(data_dir=tmp_path / "data", uv_cache_dir=cache)
    store = Store(settings.db_path)
    collector = Collector(settings, store)
    dry = (await collector.run(dry_run=True)).as_json()
    assert [(row["kind"], row["reason"]) for row in dry["keep"]] == [
        ("uv-cache", "measured, not collected (uv prunes its own cache)")]
    assert dry["total_bytes"] >= 8192
    done = await collector.run(dry_run=False)
    assert done.failures == [] and any(note.startswith(f"uv cache {cache}: pruned") for note in done.notes)
    store.close()


async def test_uvs_default_cache_is_left_alone_and_the_report_says_so(settings: Settings) -> None:
    store = Store(settings.db_path)
    report = await Collector(settings, store).run(dry_run=True)
    assert any("uv's cache is left alone" in note for note in report.notes)
    store.close()
