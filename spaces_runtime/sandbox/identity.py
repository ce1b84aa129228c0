"""Per-space identities: each space runs as its own unprivileged uid/gid, allocated once and recorded.

Two records. The host's registry (SPACES_SANDBOX_UID_REGISTRY, a small SQLite file under /var/lib/spaces-runtime)
maps (data dir, space) to a uid for every platform of the host: all allocate there, under its lock (SQLite's
BEGIN IMMEDIATE, across processes), so two platforms on one host (production beside staging, two test platforms)
never run two apps as one uid. And each platform's own store keeps its spaces' uids (``sandbox_identities``),
created when missing, so a data dir from before the sandbox just gains it.

A uid is never handed to a second space, not even after a delete (files a deleted space left anywhere stay nobody
else's); a space deleted and created again under the same name keeps its uid. A data dir from before the host's
registry brings its uids along at its next start; where another platform holds one of them already (both counted
from the same base), the space gets a new uid, and the launcher hands its files over (``launcher.prepare``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from spaces_runtime.errors import BackendError

SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_identities (
    space_id TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE, created_at REAL NOT NULL
);
"""
HOST_SCHEMA = """
CREATE TABLE IF NOT EXISTS uids (
    data_dir TEXT NOT NULL, space_id TEXT NOT NULL, uid INTEGER NOT NULL UNIQUE, created_at REAL NOT NULL,
    PRIMARY KEY (data_dir, space_id)
);
"""


def next_uid(taken: Iterable[int], base: int, count: int) -> int:
    """The lowest uid of [base, base+count) not in ``taken`` (pure). Never 0: a base of 0 is refused."""
    if base <= 0:
        raise BackendError(f"SPACES_SANDBOX_UID_BASE is {base}; apps never run as root",
                           hint="choose a base above every uid the host's own users have, e.g. 200000000")
    used = set(taken)
    candidate = max((u + 1 for u in used if base <= u < base + count), default=base)
    if candidate < base + count:
        return candidate
    free = next((u for u in range(base, base + count) if u not in used), None)
    if free is None:
        raise BackendError(f"all {count} sandbox uids from {base} are taken",
                           hint="raise SPACES_SANDBOX_UID_COUNT")
    return free


def _connect(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(schema)
    return db


class HostRegistry:
    """The host's uids, every platform's (``HOST_SCHEMA``); each call is one transaction under the file's lock."""

    def __init__(self, path: Path, base: int, count: int) -> None:
        try:
            self._db = _connect(path, HOST_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BackendError(f"the host's uid registry {path} cannot be opened: {exc}",
                               hint="SPACES_SANDBOX_UID_REGISTRY names another file; every platform of this host "
                                    "must name the same one") from None
        self.base, self.count = base, count
        self._forget_vanished()

    def _forget_vanished(self) -> None:
        """Rows of data dirs that are gone (a test's, a removed staging platform's): nothing of theirs is left to
        own. A data dir that comes back (an unmounted disk) and finds a uid taken meanwhile gets a new one."""
        dirs = [str(r[0]) for r in self._db.execute("SELECT DISTINCT data_dir FROM uids")]
        gone = [(d,) for d in dirs if not Path(d).is_dir()]
        if gone:
            self._db.executemany("DELETE FROM uids WHERE data_dir = ?", gone)

    def claim(self, data_dir: str, wanted: dict[str, int]) -> dict[str, int]:
        """The host-wide uid of each space of ``wanted`` (space id -> the uid its platform knows it by): kept where
        no other (data dir, space) holds it, else a new one; ``{}`` asks nothing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute("SELECT data_dir, space_id, uid FROM uids").fetchall()
            held = {(str(d), str(s)): int(u) for d, s, u in rows}
            taken = set(held.values()) | set(wanted.values())
            found = {}
            for space_id, uid in wanted.items():
                mine = held.get((data_dir, space_id))
                owner = next((key for key, u in held.items() if u == uid), None)
                if mine is None:
                    mine = uid if owner is None else next_uid(taken, self.base, self.count)
                    self._insert(data_dir, space_id, mine)
                    held[(data_dir, space_id)] = mine
                    taken.add(mine)
                found[space_id] = mine
            self._db.execute("COMMIT")
            return found
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def allocate(self, data_dir: str, space_id: str, local: Iterable[int]) -> int:
        """A new uid for ``space_id``, free host-wide and in ``local`` (its platform's own record)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT uid FROM uids WHERE data_dir = ? AND space_id = ?",
                                   (data_dir, space_id)).fetchone()
            if row is None:
                taken = [int(r[0]) for r in self._db.execute("SELECT uid FROM uids")]
                uid = next_uid([*taken, *local], self.base, self.count)
                self._insert(data_dir, space_id, uid)
            else:
                uid = int(row[0])
            self._db.execute("COMMIT")
            return uid
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _insert(self, data_dir: str, space_id: str, uid: int) -> None:
        self._db.execute("INSERT INTO uids (data_dir, space_id, uid, created_at) VALUES (?,?,?,?)",
                         (data_dir, space_id, uid, time.time()))

    def close(self) -> None:
        self._db.close()


class Identities:
    """The uid of each space of one platform: its store's ``sandbox_identities`` table (its own connection: WAL
    lets it sit beside the store's), kept in step with the host's registry."""

    def __init__(self, db_path: Path, registry: HostRegistry, data_dir: Path) -> None:
        self._db = _connect(db_path, SCHEMA)
        self._lock = threading.Lock()
        self.registry = registry
        self.data_dir = str(data_dir.resolve())
        self._sync()

    def _sync(self) -> None:
        """This platform's uids registered host-wide (a data dir from before the registry); a uid another
        platform holds already is replaced by the one the registry hands out."""
        with self._lock:
            local = {str(s): int(u) for s, u in self._db.execute("SELECT space_id, uid FROM sandbox_identities")}
            if not local:
                return
            host = self.registry.claim(self.data_dir, local)
            moved = {s: u for s, u in host.items() if local[s] != u}
            if moved:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM sandbox_identities WHERE space_id = ?", [(s,) for s in moved])
                self._db.executemany("INSERT INTO sandbox_identities (space_id, uid, created_at) VALUES (?,?,?)",
                                     [(s, u, time.time()) for s, u in moved.items()])
                self._db.execute("COMMIT")

    def uid_for(self, space_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT uid FROM sandbox_identities WHERE space_id = ?", (space_id,)).fetchone()
            if row is not None:
                return int(row[0])
            self._db.execute("BEGIN IMMEDIATE")
            try:
                local = [int(r[0]) for r in self._db.execute("SELECT uid FROM sandbox_identities")]
                uid = self.registry.allocate(self.data_dir, space_id, local)
                self._db.execute("INSERT INTO sandbox_identities (space_id, uid, created_at) VALUES (?,?,?)",
                                 (space_id, uid, time.time()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return uid

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self.registry.close()
