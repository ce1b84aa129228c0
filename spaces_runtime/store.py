"""SQLite store (WAL) in the data dir: spaces, builds, events (stage changes), likes and visits.

Calls are short and synchronous; one connection guarded by a lock serves the whole server process.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from spaces_runtime.errors import DiskFullError, NotFoundError
from spaces_runtime.stages import Stage, check_transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS spaces (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,
    stage TEXT NOT NULL, error TEXT, desired TEXT NOT NULL DEFAULT 'running',
    card TEXT NOT NULL DEFAULT '{}', env_hash TEXT, code_hash TEXT, code_dir TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT, space_id TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, status TEXT NOT NULL, env_hash TEXT, code_hash TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, space_id TEXT NOT NULL, at REAL NOT NULL,
    stage TEXT NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS likes (
    space_id TEXT NOT NULL, liker TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (space_id, liker)
);
CREATE TABLE IF NOT EXISTS visits (space_id TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_space ON events (space_id, id);
CREATE INDEX IF NOT EXISTS visits_by_space ON visits (space_id, at);
CREATE INDEX IF NOT EXISTS likes_by_space ON likes (space_id, at);
"""

ADDED_COLUMNS = {"private": "INTEGER NOT NULL DEFAULT 0", "share_key": "TEXT", "hardware": "TEXT",
                 "replicas": "INTEGER"}
TRENDING_WINDOW_S = 7 * 24 * 3600


class SpaceRecord(BaseModel):
    """A space as the REST API, the CLI and the gallery see it."""

    id: str
    owner: str
    name: str
    stage: Stage
    error: str | None = None
    desired: str = "running"
    card: dict[str, Any] = Field(default_factory=dict)  # README front matter, normalised by the builder
    env_hash: str | None = None
    code_hash: str | None = None
    code_dir: str | None = None
    private: bool = False  # seen only by the owner, the owner organization's members and admins
    hardware: str | None = None  # the tier its owner chose (None: the README's, else the platform's default)
    replicas: int | None = None  # swarm backend: the owner's choice (None: the README's, else 1)
    created_at: float
    updated_at: float
    likes: int = 0
    visits: int = 0
    trending_score: float = 0.0


class EventRecord(BaseModel):
    space_id: str
    at: float
    stage: Stage
    reason: str


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """The platform's SQLite file as every part of it opens it: WAL (readers never wait for the writer), one
    connection shared by threads under the caller's lock, autocommit outside explicit transactions, rows by name,
    and ``schema`` (CREATE ... IF NOT EXISTS) applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


@contextmanager
def transaction(db: sqlite3.Connection, folder: Path, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
    """One transaction: committed, or rolled back with nothing written. A full disk is DiskFullError (507 at the
    HTTP edge, naming the free space), never a bare "database or disk is full"."""
    try:
        db.execute(begin)
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.OperationalError):  # SQLite may have rolled back by itself (a full disk)
                db.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        if "full" in str(exc) or "disk I/O" in str(exc):
            raise DiskFullError.at(folder) from exc
        raise


class Store:
    def __init__(self, path: Path) -> None:
        self._folder = path.parent
        self._db = open_db(path, SCHEMA)
        self._lock = threading.RLock()
        with self._lock:
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns added after a data dir was made: an older store gains them with their defaults."""
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(spaces)")}
        for column, declaration in ADDED_COLUMNS.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE spaces ADD COLUMN {column} {declaration}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db, self._folder, "BEGIN") as db:
            yield db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- spaces ------------------------------------------------------------------------------------------
    def create_or_touch(self, space_id: str, stage: Stage, reason: str) -> SpaceRecord:
        """Insert a new space in ``stage`` or leave an existing one as it is; record the event either way."""
        owner, name = space_id.split("/", 1)
        now = time.time()
        with self._tx() as db:
            created = db.execute(
                "INSERT OR IGNORE INTO spaces (id, owner, name, stage, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                (space_id, owner, name, stage, now, now),
            ).rowcount
            if created:
                db.execute("INSERT INTO events (space_id, at, stage, reason) VALUES (?,?,?,?)",
                           (space_id, now, stage, reason))
        return self.get(space_id)

    def get(self, space_id: str) -> SpaceRecord:
        row = self._query_spaces("WHERE s.id = ?", (space_id,))
        if not row:
            raise NotFoundError(f"no space named {space_id}", hint="`spaces list` shows the spaces there are")
        return row[0]

    def find(self, space_id: str) -> SpaceRecord | None:
        rows = self._query_spaces("WHERE s.id = ?", (space_id,))
        return rows[0] if rows else None

    def peek(self, space_id: str) -> SpaceRecord | None:
        """Like find, without counting likes and visits: for the gateway's per-request lookup."""
        with self._lock:
            row = self._db.execute("SELECT s.* FROM spaces s WHERE s.id = ?", (space_id,)).fetchone()
        return None if row is None else self._record(row)

    def spaces(self) -> list[SpaceRecord]:
        return self._query_spaces("", ())

    def _query_spaces(self, where: str, args: tuple[Any, ...]) -> list[SpaceRecord]:
        since = time.time() - TRENDING_WINDOW_S
        sql = f"""
            SELECT s.*,
              (SELECT COUNT(*) FROM likes l WHERE l.space_id = s.id) AS likes,
              (SELECT COUNT(*) FROM visits v WHERE v.space_id = s.id) AS visits,
              (SELECT COUNT(*) FROM likes l WHERE l.space_id = s.id AND l.at > ?) * 5 +
              (SELECT COUNT(*) FROM visits v WHERE v.space_id = s.id AND v.at > ?) AS trending_score
            FROM spaces s {where} ORDER BY s.created_at"""
        with self._lock:
            rows = self._db.execute(sql, (since, since, *args)).fetchall()
        return [self._record(row) for row in rows]

    @staticmethod
    def _record(row: sqlite3.Row) -> SpaceRecord:
        data = dict(row)
        data["card"] = json.loads(data["card"] or "{}")
        return SpaceRecord(**data)

    def set_stage(self, space_id: str, stage: Stage, reason: str = "", error: str | None = None) -> SpaceRecord:
        """Move a space to ``stage`` through the one transition guard; errors are cleared on healthy stages."""
        with self._tx() as db:
            row = db.execute("SELECT stage FROM spaces WHERE id = ?", (space_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no space named {space_id}")
            check_transition(Stage(row["stage"]), stage)
            now = time.time()
            db.execute("UPDATE spaces SET stage = ?, error = ?, updated_at = ? WHERE id = ?",
                       (stage, error, now, space_id))
            db.execute("INSERT INTO events (space_id, at, stage, reason) VALUES (?,?,?,?)",
                       (space_id, now, stage, reason))
        return self.get(space_id)

    def share_key(self, space_id: str) -> str | None:
        """The key the space's share links are signed with (made on first use); None: no such space."""
        with self._lock:
            row = self._db.execute("SELECT share_key FROM spaces WHERE id = ?", (space_id,)).fetchone()
        if row is None:
            return None
        return row["share_key"] or self.rotate_share_key(space_id)

    def rotate_share_key(self, space_id: str) -> str:
        """A new share key: every link made with the old one stops working."""
        key = secrets.token_urlsafe(16)
        with self._tx() as db:
            db.execute("UPDATE spaces SET share_key = ? WHERE id = ?", (key, space_id))
        return key

    def update(self, space_id: str, **fields: Any) -> None:
        """Set plain columns (card, desired, env_hash, code_hash, code_dir, private, hardware, replicas)."""
        allowed = {"card", "desired", "env_hash", "code_hash", "code_dir", "private", "hardware", "replicas"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "card" in fields:
            fields["card"] = json.dumps(fields["card"], default=str)
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self._tx() as db:
            db.execute(f"UPDATE spaces SET {assignments}, updated_at = ? WHERE id = ?",
                       (*fields.values(), time.time(), space_id))

    def delete(self, space_id: str) -> None:
        with self._tx() as db:
            for table, column in (("spaces", "id"), ("builds", "space_id"), ("events", "space_id"),
                                  ("likes", "space_id"), ("visits", "space_id")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (space_id,))

    # --- events, builds -----------------------------------------------------------------------------------
    def events(self, space_id: str, limit: int = 100) -> list[EventRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT space_id, at, stage, reason FROM events WHERE space_id = ? ORDER BY id DESC LIMIT ?",
                (space_id, limit)).fetchall()
        return [EventRecord(**dict(row)) for row in reversed(rows)]

    def start_build(self, space_id: str, env_hash: str | None, code_hash: str | None) -> int:
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO builds (space_id, started_at, status, env_hash, code_hash) VALUES (?,?,?,?,?)",
                (space_id, time.time(), "running", env_hash, code_hash))
        return int(cursor.lastrowid or 0)

    def finish_build(self, build_id: int, status: str, error: str | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE builds SET finished_at = ?, status = ?, error = ? WHERE id = ?",
                       (time.time(), status, error, build_id))

    def builds(self, space_id: str, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM builds WHERE space_id = ? ORDER BY id DESC LIMIT ?",
                                    (space_id, limit)).fetchall()
        return [dict(row) for row in rows]

    # --- likes, visits ------------------------------------------------------------------------------------
    def set_like(self, space_id: str, liker: str, liked: bool) -> int:
        """Like (once per liker) or unlike; returns the new count."""
        self.get(space_id)
        with self._tx() as db:
            if liked:
                db.execute("INSERT OR IGNORE INTO likes (space_id, liker, at) VALUES (?,?,?)",
                           (space_id, liker, time.time()))
            else:
                db.execute("DELETE FROM likes WHERE space_id = ? AND liker = ?", (space_id, liker))
            return int(db.execute("SELECT COUNT(*) FROM likes WHERE space_id = ?", (space_id,)).fetchone()[0])

    def has_liked(self, space_id: str, liker: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM likes WHERE space_id = ? AND liker = ?",
                                   (space_id, liker)).fetchone()
        return row is not None

    def record_visit(self, space_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO visits (space_id, at) VALUES (?,?)", (space_id, time.time()))
