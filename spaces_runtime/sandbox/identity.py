"""Per-space identities: each space runs as its own unprivileged uid/gid, allocated once and recorded.

The record is a table of its own in the platform's SQLite store (``sandbox_identities``), created when missing,
so data dirs from before the sandbox just gain it. A uid is never handed to a second space, not even after a
delete (files a deleted space left anywhere stay nobody else's); a space deleted and created again under the same
name keeps its uid.
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


class Identities:
    """The uid of each space, from the store's ``sandbox_identities`` table (its own connection: WAL lets it sit
    beside the store's)."""

    def __init__(self, db_path: Path, base: int, count: int) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.base, self.count = base, count

    def uid_for(self, space_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT uid FROM sandbox_identities WHERE space_id = ?", (space_id,)).fetchone()
            if row is not None:
                return int(row[0])
            self._db.execute("BEGIN IMMEDIATE")
            try:
                taken = [int(r[0]) for r in self._db.execute("SELECT uid FROM sandbox_identities")]
                uid = next_uid(taken, self.base, self.count)
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
