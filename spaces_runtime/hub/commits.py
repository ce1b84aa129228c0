"""Every deploy is a commit: an upload is committed into the space's repository with the uploader as author, a
push or a rollback deploys a commit that is already there, and each deploy's row (space, version, commit) carries
the stage that deploy reached, so the history can say what each commit did.

The stage is taken from the stage changes themselves (a StageSink listener): the newest deploy of a space takes
every deploy stage until it ends (RUNNING or an error); a deploy that a newer one replaced before it ended is
SUPERSEDED. Restarts, sleeps and pauses after the end are the app's life, not the deploy's outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.deploy.stagesink import StageSink
from spaces_runtime.deploy.versions import version_name
from spaces_runtime.errors import UploadError
from spaces_runtime.hub.hooks import hook_scripts
from spaces_runtime.hub.lfs import LfsObjects
from spaces_runtime.hub.repos import Author, CommitInfo, GitCommandError, SpaceRepos
from spaces_runtime.stages import ERROR_STAGES, Stage
from spaces_runtime.store import Store

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS space_commits (
    space_id TEXT NOT NULL, version TEXT NOT NULL, sha TEXT NOT NULL, at REAL NOT NULL, stage TEXT NOT NULL,
    PRIMARY KEY (space_id, version)
);
CREATE INDEX IF NOT EXISTS space_commits_by_sha ON space_commits (space_id, sha, at);
"""
SUPERSEDED = "SUPERSEDED"
# a deploy's own stages, named as the history shows them (the RUNNING_ forms: an older version served meanwhile)
REACHED = {Stage.BUILDING: "BUILDING", Stage.RUNNING_BUILDING: "BUILDING", Stage.APP_STARTING: "APP_STARTING",
           Stage.RUNNING_APP_STARTING: "APP_STARTING", Stage.RUNNING: "RUNNING",
           **{stage: stage.value for stage in ERROR_STAGES}}
ENDED = frozenset({"RUNNING", SUPERSEDED, *(stage.value for stage in ERROR_STAGES)})
PLATFORM = "spaces-runtime"


@dataclass(frozen=True)
class HistoryEntry:
    commit: str
    author: str
    email: str
    date: str
    message: str
    stage: str | None  # what its newest deploy reached; None: never deployed (an intermediate commit of a push)
    deployed_at: float | None
    running: bool  # its code is what serves now


class SpaceCommits:
    def __init__(self, settings: Settings, store: Store, stages: StageSink | None = None) -> None:
        self.settings = settings
        self.store = store
        self.repos = SpaceRepos(settings.data_dir / "git", hook_scripts())
        self.lfs = LfsObjects(settings.data_dir / "lfs", settings.db_path, settings.max_upload_bytes,
                              settings.space_storage_bytes)
        self.enabled = SpaceRepos.available()
        if not self.enabled:
            log.warning("git is not installed: deploys get no commit, and spaces cannot be cloned or pushed")
        self._db = sqlite3.connect(settings.db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()
        with self._lock:
            self._db.executescript(SCHEMA)
        if stages is not None:
            stages.listeners.append(self.on_stage)

    def author(self, user: str | None) -> Author:
        host = self.settings.public_link_host.rsplit(":", 1)[0]
        name = user or PLATFORM
        return Author(name, f"{name}@{host}")

    # --- deploys -----------------------------------------------------------------------------------------------
    async def record(self, space_id: str, app_dir: Path, version: str, author: str | None,
                     commit: str | None = None, message: str = "Deploy with spaces deploy") -> str | None:
        """The commit of a deploy about to start (``app_dir`` committed unless ``commit`` names it already), and
        the deploy's row. None without git, or when git failed (the deploy goes on: a space that serves matters
        more than its history; the log says why)."""
        if not self.enabled:
            return commit
        try:
            sha = commit or await asyncio.to_thread(self.repos.commit_folder, space_id, app_dir,
                                                    self.author(author), message)
        except GitCommandError as exc:
            log.warning("%s: the upload was not committed: %s", space_id, exc)
            return None
        with self._lock:
            self._db.execute("UPDATE space_commits SET stage = ? WHERE space_id = ? AND stage NOT IN "
                             f"({','.join('?' * len(ENDED))})", (SUPERSEDED, space_id, *ENDED))
            self._db.execute("INSERT OR REPLACE INTO space_commits (space_id, version, sha, at, stage) "
                             "VALUES (?,?,?,?,?)", (space_id, version, sha, time.time(), "BUILDING"))
        return sha

    def on_stage(self, space_id: str) -> None:
        record = self.store.peek(space_id)
        if record is None:
            return
        if record.stage is Stage.DELETING:
            self.forget(space_id)
            return
        reached = REACHED.get(record.stage)
        if reached is None:
            return
        with self._lock:
            row = self._db.execute("SELECT version, stage FROM space_commits WHERE space_id = ? ORDER BY at DESC "
                                   "LIMIT 1", (space_id,)).fetchone()
            if row is not None and row[1] not in ENDED:
                self._db.execute("UPDATE space_commits SET stage = ? WHERE space_id = ? AND version = ?",
                                 (reached, space_id, row[0]))

    def forget(self, space_id: str) -> None:
        """A deleted space's history goes with it (a new space by that name starts afresh, as on the Hub)."""
        self.repos.remove(space_id)
        self.lfs.forget(space_id)
        with self._lock:
            self._db.execute("DELETE FROM space_commits WHERE space_id = ?", (space_id,))

    # --- reading -----------------------------------------------------------------------------------------------
    def running_commit(self, space_id: str) -> str | None:
        record = self.store.peek(space_id)
        version = version_name(record.code_dir) if record is not None else None
        with self._lock:
            row = self._db.execute("SELECT sha FROM space_commits WHERE space_id = ? AND version = ?",
                                   (space_id, version)).fetchone()
        return str(row[0]) if row else None

    def view(self, space_id: str) -> dict[str, object]:
        """For the space's API answer: ``sha`` is main's head (as on the Hub), ``running_sha`` the code serving,
        ``storage`` the bytes of LFS objects it holds against its quota."""
        quota = self.lfs.quota_of(space_id)
        return {"sha": self.repos.head(space_id), "running_sha": self.running_commit(space_id),
                "storage": {"lfs_bytes": quota.used, "quota_bytes": quota.limit}}

    def history(self, space_id: str, limit: int = 50) -> list[HistoryEntry]:
        self.ensure_repo(space_id)
        running = self.running_commit(space_id)
        return [self._entry(info, running, space_id) for info in self.repos.log(space_id, limit)]

    def _entry(self, info: CommitInfo, running: str | None, space_id: str) -> HistoryEntry:
        with self._lock:
            row = self._db.execute("SELECT stage, at FROM space_commits WHERE space_id = ? AND sha = ? "
                                   "ORDER BY at DESC LIMIT 1", (space_id, info.sha)).fetchone()
        return HistoryEntry(info.sha, info.author, info.email, info.date, info.message,
                            str(row[0]) if row else None, float(row[1]) if row else None, info.sha == running)

    def lfs_references(self) -> dict[str, list[str]]:
        """oid → the spaces whose commits reference that LFS object: every repository on the disk (a deleted
        space's is gone with it), each from its refs and its recorded deploys."""
        found: dict[str, list[str]] = {}
        for repo in sorted(self.repos.root.glob("*/*.git")):
            space_id = f"{repo.parent.name}/{repo.name.removesuffix('.git')}"
            with self._lock:
                rows = self._db.execute("SELECT DISTINCT sha FROM space_commits WHERE space_id = ?",
                                        (space_id,)).fetchall()
            for oid in self.repos.lfs_references(space_id, [str(row[0]) for row in rows]):
                found.setdefault(oid, []).append(space_id)
        return found

    # --- the repository ----------------------------------------------------------------------------------------
    def ensure_repo(self, space_id: str) -> Path:
        """The space's repository; a space deployed before it had one gets its serving code as the first commit,
        so that it can be cloned like any other."""
        fresh = not self.repos.exists(space_id)
        repo = self.repos.ensure(space_id)
        record = self.store.peek(space_id)
        if fresh and record is not None and record.code_dir and Path(record.code_dir).is_dir():
            sha = self.repos.commit_folder(space_id, Path(record.code_dir), self.author(None),
                                           "Import the code that served before the space had a repository")
            with self._lock, contextlib.suppress(sqlite3.IntegrityError):
                self._db.execute("INSERT INTO space_commits (space_id, version, sha, at, stage) VALUES (?,?,?,?,?)",
                                 (space_id, version_name(record.code_dir), sha, record.updated_at,
                                  REACHED.get(record.stage, "RUNNING")))
        return repo

    def export(self, space_id: str, commit: str, objects: dict[str, str] | None = None,
               require_lfs: bool = False) -> Path:
        """The commit's files as a tar in the platform's scratch folder (the caller removes it), LFS pointers
        replaced by their objects. ``require_lfs``: refuse a commit whose LFS objects were not uploaded (a push's
        check; a deploy goes on with the pointers, and the log says which)."""
        scratch = self.settings.data_dir / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=scratch, prefix="commit-", suffix=".tar")
        os.close(fd)  # git archive writes it
        archive = Path(name)
        try:
            self.repos.archive(space_id, commit, archive, objects)
            missing = self.lfs.smudge(space_id, archive)
        except BaseException:
            archive.unlink(missing_ok=True)
            raise
        if missing and require_lfs:
            archive.unlink(missing_ok=True)
            raise UploadError(f"the LFS objects of {', '.join(missing[:5])} were not uploaded to {space_id}",
                              hint="install git-lfs, `git lfs push --all REMOTE main`, then push again")
        if missing:
            log.warning("%s: commit %s deploys LFS pointers without objects: %s", space_id, commit, missing)
        return archive
