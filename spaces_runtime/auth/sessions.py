"""Web sessions kept on the server, in the platform's SQLite file: a signed-in browser's cookie carries a random
session id (signed, as before), and the session is good only while its row exists. So signing out ends it at
once, a copied cookie included; a user sees where they are signed in and ends any of those sessions, or all.

The row keeps the id's SHA-256 only (a stolen database opens no session, as with tokens), the user, when it began
and was last used, and the browser's user agent and address (to tell one's sessions apart). A session ends after
``idle_s`` without a request and ``absolute_s`` after it began, whichever comes first."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from spaces_runtime.store import open_db, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, hash TEXT NOT NULL UNIQUE, user TEXT NOT NULL, csrf TEXT NOT NULL,
    created_at REAL NOT NULL, last_seen_at REAL NOT NULL, user_agent TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '', token_id INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user);
CREATE TABLE IF NOT EXISTS used_passes (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""
TOUCH_EVERY_S = 60.0  # last-seen is written at most this often per session: a page load is not a disk write
MAX_USER_AGENT = 300


class SessionInfo(BaseModel):
    """What a user sees of one of their sessions (never its id's secret)."""

    id: int
    user: str
    created_at: float
    last_seen_at: float
    user_agent: str
    address: str
    current: bool = False


@dataclass(frozen=True)
class Lifetimes:
    idle_s: float = 3 * 86400
    absolute_s: float = 14 * 86400


@dataclass(frozen=True)
class Live:
    """A session that is good now: its row's id, user and CSRF token."""

    id: int
    user: str
    csrf: str


def hash_session(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class Sessions:
    def __init__(self, path: Path, lifetimes: Lifetimes = Lifetimes(),
                 clock: Callable[[], float] = time.time) -> None:
        self._folder = path.parent
        self._db = open_db(path, SCHEMA)
        self._lock = threading.RLock()
        self.lifetimes = lifetimes
        self._clock = clock

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db, self._folder, "BEGIN IMMEDIATE") as db:
            yield db

    def start(self, user: str, user_agent: str = "", address: str = "",
              token_id: int | None = None) -> tuple[str, str]:
        """A new session for ``user``: its secret id (for the cookie only) and its CSRF token. ``token_id``: the
        token it was signed in with, whose revocation ends it."""
        secret, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), self._clock()
        with self._tx() as db:  # sessions nobody came back to are dropped here, not kept for ever
            db.execute("DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
                       (now - self.lifetimes.idle_s, now - self.lifetimes.absolute_s))
            db.execute("INSERT INTO sessions (hash, user, csrf, created_at, last_seen_at, user_agent, address, "
                       "token_id) VALUES (?,?,?,?,?,?,?,?)",
                       (hash_session(secret), user, csrf, now, now, user_agent[:MAX_USER_AGENT], address, token_id))
        return secret, csrf

    def live(self, secret: str) -> Live | None:
        """The session ``secret`` names, if it has not ended nor expired (an expired one is removed here)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE hash = ?", (hash_session(secret),)).fetchone()
        if row is None:
            return None
        now = self._clock()
        if expired(row["created_at"], row["last_seen_at"], now, self.lifetimes):
            self.end_by_id(row["id"])
            return None
        if now - row["last_seen_at"] >= TOUCH_EVERY_S:
            with self._tx() as db:
                db.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, row["id"]))
        return Live(row["id"], row["user"], row["csrf"])

    def of(self, user: str, current: int | None = None) -> list[SessionInfo]:
        """``user``'s sessions that are still good, the newest first; ``current``: the asking session's id."""
        now = self._clock()
        with self._lock:
            rows = self._db.execute("SELECT * FROM sessions WHERE user = ? ORDER BY id DESC", (user,)).fetchall()
        return [SessionInfo(id=r["id"], user=r["user"], created_at=r["created_at"], last_seen_at=r["last_seen_at"],
                            user_agent=r["user_agent"], address=r["address"], current=r["id"] == current)
                for r in rows if not expired(r["created_at"], r["last_seen_at"], now, self.lifetimes)]

    def owner(self, session_id: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT user FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else str(row["user"])

    def end_by_id(self, session_id: int) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def end(self, secret: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM sessions WHERE hash = ?", (hash_session(secret),)).rowcount > 0

    def end_all(self, user: str, keep: int | None = None) -> int:
        """End every session of ``user`` (but ``keep``, the asking one, when given); how many ended."""
        with self._tx() as db:
            return db.execute("DELETE FROM sessions WHERE user = ? AND id IS NOT ?", (user, keep)).rowcount

    def end_by_token(self, token_id: int) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM sessions WHERE token_id = ?", (token_id,)).rowcount

    def use_once(self, nonce: str, expires_at: float) -> bool:
        """True the first time ``nonce`` is used, False ever after (until it expires, when it is no good anyway).
        A row per nonce: a replay is refused across restarts too."""
        now = self._clock()
        with self._tx() as db:
            db.execute("DELETE FROM used_passes WHERE expires_at < ?", (now,))
            try:
                db.execute("INSERT INTO used_passes (nonce, expires_at) VALUES (?,?)", (nonce, expires_at))
            except sqlite3.IntegrityError:
                return False
        return True


def expired(created_at: float, last_seen_at: float, now: float, lifetimes: Lifetimes) -> bool:
    return now - last_seen_at > lifetimes.idle_s or now - created_at > lifetimes.absolute_s
