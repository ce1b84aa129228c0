"""Users, organizations, members, tokens and the audit trail, in the platform's SQLite file.

Tokens are random (256 bits) and stored only as their SHA-256: a stolen database gives no token, and a token
this long needs no slow hash (that is for passwords, which ``passwords`` hashes with argon2)."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from spaces_runtime.auth.principal import ROLES, Principal, Role
from spaces_runtime.errors import ConflictError, InvalidNameError, NotFoundError
from spaces_runtime.names import RESERVED_OWNERS, check_name
from spaces_runtime.store import open_db, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, admin INTEGER NOT NULL DEFAULT 0, password_hash TEXT, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS orgs (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    org TEXT NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (org, user)
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT, token_id INTEGER, action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_target ON audit (target, id);
"""
TOKEN_PREFIX = "spt_"
# users' columns added after a data dir was made: an older file gains them (the store's way, store.ADDED_COLUMNS)
ADDED_USER_COLUMNS = {"disabled_at": "REAL"}


LOCAL_TOKEN = "local admin token"  # the token the platform keeps in its data dir (wiring.admin)
ENV_TOKEN = "SPACES_TOKEN"  # a token the operator gave the platform at start
PLATFORM_TOKENS = frozenset({LOCAL_TOKEN, ENV_TOKEN})  # `spaces tokens revoke --all` leaves them (by id only)


class TokenInfo(BaseModel):
    id: int
    user: str
    name: str
    role: Role
    created_at: float
    last_used_at: float | None = None
    revoked: bool = False


class UserInfo(BaseModel):
    name: str
    admin: bool
    created_at: float
    orgs: dict[str, Role] = {}
    disabled: bool = False


class AuditEvent(BaseModel):
    at: float
    actor: str | None
    token_id: int | None
    action: str
    target: str
    detail: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidNameError(f"role {role!r} is not one of {', '.join(ROLES)}", hint="--role write, for example")
    return role


class Accounts:
    def __init__(self, path: Path) -> None:
        self._folder = path.parent
        self._db = open_db(path, SCHEMA)
        self._lock = threading.RLock()
        with self._lock:
            have = {row["name"] for row in self._db.execute("PRAGMA table_info(users)")}
            for column, declaration in ADDED_USER_COLUMNS.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE users ADD COLUMN {column} {declaration}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db, self._folder, "BEGIN IMMEDIATE") as db:
            yield db

    def _one(self, sql: str, args: tuple[object, ...]) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    # --- users and organizations ---------------------------------------------------------------------------
    def add_user(self, name: str, admin: bool = False) -> UserInfo:
        _check_namespace(name, "user name")
        if self._one("SELECT 1 FROM orgs WHERE name = ?", (name,)):
            raise ConflictError(f"{name} is an organization's name", hint="choose another user name")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ConflictError(f"user {name} exists already", hint="`spaces users list` shows the users")
            db.execute("INSERT INTO users (name, admin, created_at) VALUES (?,?,?)", (name, int(admin), time.time()))
        return self.user(name)

    def user(self, name: str) -> UserInfo:
        row = self._one("SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            raise NotFoundError(f"no user named {name}", hint="`spaces users add NAME` creates one")
        return UserInfo(name=row["name"], admin=bool(row["admin"]), created_at=row["created_at"],
                        orgs=self.roles_of(name), disabled=row["disabled_at"] is not None)

    def users(self) -> list[UserInfo]:
        with self._lock:
            names = [r["name"] for r in self._db.execute("SELECT name FROM users ORDER BY name")]
        return [self.user(name) for name in names]

    def set_disabled(self, name: str, disabled: bool) -> UserInfo:
        """A disabled user's tokens and password open nothing (they are kept, for when the user is enabled)."""
        self.user(name)
        with self._tx() as db:
            db.execute("UPDATE users SET disabled_at = ? WHERE name = ?", (time.time() if disabled else None, name))
        return self.user(name)

    def has_users(self) -> bool:
        return self._one("SELECT 1 FROM users LIMIT 1", ()) is not None

    def add_org(self, name: str) -> None:
        _check_namespace(name, "organization name")
        if self._one("SELECT 1 FROM users WHERE name = ?", (name,)):
            raise ConflictError(f"{name} is a user's name", hint="choose another organization name")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM orgs WHERE name = ?", (name,)).fetchone():
                raise ConflictError(f"organization {name} exists already")
            db.execute("INSERT INTO orgs (name, created_at) VALUES (?,?)", (name, time.time()))

    def orgs(self) -> dict[str, dict[str, Role]]:
        """Each organization with its members and their roles."""
        with self._lock:
            names = [r["name"] for r in self._db.execute("SELECT name FROM orgs ORDER BY name")]
            rows = self._db.execute("SELECT org, user, role FROM members ORDER BY user").fetchall()
        found: dict[str, dict[str, Role]] = {name: {} for name in names}
        for row in rows:
            found.setdefault(row["org"], {})[row["user"]] = row["role"]
        return found

    def set_member(self, org: str, user: str, role: str) -> None:
        role = check_role(role)
        if self._one("SELECT 1 FROM orgs WHERE name = ?", (org,)) is None:
            raise NotFoundError(f"no organization named {org}", hint="`spaces orgs add ORG` creates one")
        self.user(user)
        with self._tx() as db:
            db.execute("INSERT INTO members (org, user, role) VALUES (?,?,?) "
                       "ON CONFLICT (org, user) DO UPDATE SET role = excluded.role", (org, user, role))

    def remove_member(self, org: str, user: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM members WHERE org = ? AND user = ?", (org, user))

    def roles_of(self, user: str) -> dict[str, Role]:
        with self._lock:
            rows = self._db.execute("SELECT org, role FROM members WHERE user = ?", (user,)).fetchall()
        return {row["org"]: row["role"] for row in rows}

    def namespace_exists(self, name: str) -> bool:
        return bool(self._one("SELECT 1 FROM users WHERE name = ? UNION SELECT 1 FROM orgs WHERE name = ?",
                              (name, name)))

    # --- passwords -------------------------------------------------------------------------------------------
    def set_password_hash(self, user: str, password_hash: str) -> None:
        self.user(user)
        with self._tx() as db:
            db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, user))

    def password_hash(self, user: str) -> str | None:
        row = self._one("SELECT password_hash FROM users WHERE name = ?", (user,))
        return None if row is None else row["password_hash"]

    # --- tokens ------------------------------------------------------------------------------------------------
    def create_token(self, user: str, name: str = "cli", role: str = "write") -> tuple[TokenInfo, str]:
        """A new token for ``user``: its record and the secret, which is shown once and never stored."""
        role = check_role(role)
        self.user(user)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._tx() as db:
            cursor = db.execute("INSERT INTO tokens (user, name, role, hash, created_at) VALUES (?,?,?,?,?)",
                                (user, name, role, hash_token(secret), time.time()))
            token_id = int(cursor.lastrowid or 0)
        return self.token(token_id), secret

    def add_token_hash(self, user: str, name: str, token_hash: str, role: Role = "write") -> None:
        """Register a token made elsewhere (an older data dir's token file, SPACES_TOKEN), by its hash."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO tokens (user, name, role, hash, created_at) VALUES (?,?,?,?,?)",
                       (user, name, role, token_hash, time.time()))

    def token_hash(self, token_id: int) -> str | None:
        row = self._one("SELECT hash FROM tokens WHERE id = ?", (token_id,))
        return None if row is None else row["hash"]

    def token(self, token_id: int) -> TokenInfo:
        row = self._one("SELECT * FROM tokens WHERE id = ?", (token_id,))
        if row is None:
            raise NotFoundError(f"no token with id {token_id}", hint="`spaces tokens list` shows them")
        return _token_info(row)

    def tokens(self, user: str | None = None) -> list[TokenInfo]:
        sql, args = ("SELECT * FROM tokens WHERE user = ? ORDER BY id", (user,)) if user else \
            ("SELECT * FROM tokens ORDER BY id", ())
        with self._lock:
            return [_token_info(row) for row in self._db.execute(sql, args).fetchall()]

    def revoke(self, token_id: int) -> TokenInfo:
        self.token(token_id)
        with self._tx() as db:
            db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), token_id))
        return self.token(token_id)

    def revoke_all(self, user: str, spare: frozenset[str] = frozenset()) -> list[int]:
        """Revoke every token of ``user`` but those named in ``spare``; the ids revoked now."""
        self.user(user)
        with self._tx() as db:
            ids = [r["id"] for r in db.execute("SELECT id, name FROM tokens WHERE user = ? AND revoked_at IS NULL",
                                               (user,)).fetchall() if r["name"] not in spare]
            db.executemany("UPDATE tokens SET revoked_at = ? WHERE id = ?", [(time.time(), i) for i in ids])
        return ids

    def principal(self, secret: str) -> Principal | None:
        """Who holds ``secret``; None for an unknown or revoked token."""
        row = self._one("SELECT t.id, t.user, t.role, u.admin FROM tokens t JOIN users u ON u.name = t.user "
                        "WHERE t.hash = ? AND t.revoked_at IS NULL AND u.disabled_at IS NULL", (hash_token(secret),))
        if row is None:
            return None
        with self._tx() as db:
            db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (time.time(), row["id"]))
        return self.principal_of(row["user"], cap=row["role"], token_id=row["id"])

    def principal_of(self, user: str, cap: Role = "write", token_id: int | None = None) -> Principal:
        info = self.user(user)
        return Principal(name=info.name, admin=info.admin, cap=cap, orgs=info.orgs, token_id=token_id)

    def active(self, user: str) -> Principal | None:
        """The user as a principal; None when they were removed or are disabled (their browsers are signed out)."""
        try:
            info = self.user(user)
        except NotFoundError:
            return None
        return None if info.disabled else Principal(name=info.name, admin=info.admin, orgs=info.orgs)

    # --- audit -------------------------------------------------------------------------------------------------
    def audit(self, principal: Principal, action: str, target: str = "", detail: str = "") -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit (at, actor, token_id, action, target, detail) VALUES (?,?,?,?,?,?)",
                       (time.time(), principal.name, principal.token_id, action, target, detail))

    def audit_events(self, target: str | None = None, limit: int = 200) -> list[AuditEvent]:
        sql = "SELECT * FROM audit " + ("WHERE target = ? OR target LIKE ? " if target else "") + \
              "ORDER BY id DESC LIMIT ?"
        args: tuple[object, ...] = (target, f"{target}/%", limit) if target else (limit,)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [AuditEvent(at=r["at"], actor=r["actor"], token_id=r["token_id"], action=r["action"],
                           target=r["target"], detail=r["detail"]) for r in reversed(rows)]


def _check_namespace(name: str, what: str) -> None:
    check_name(name, what)
    if name in RESERVED_OWNERS:
        raise InvalidNameError(f"{what} {name!r} is reserved by the platform", hint="choose another name")


def _token_info(row: sqlite3.Row) -> TokenInfo:
    return TokenInfo(id=row["id"], user=row["user"], name=row["name"], role=row["role"],
                     created_at=row["created_at"], last_used_at=row["last_used_at"],
                     revoked=row["revoked_at"] is not None)
