"""Per-space secrets and variables, as on Hugging Face: both become the app's environment variables at start;
variables are plain and visible to members, secrets are write-only and encrypted at rest.

Secrets are sealed with Fernet (``cryptography``: AES-128-CBC + HMAC-SHA256) under a key in its own file
(``Settings.secrets_key_path``, 0600 in a 0700 folder, never under apps/ or envs/): a copy of the database alone
reveals no value. Each ciphertext also names the space and key it was made for, so a row moved to another space
by someone who can write the database does not decrypt there. Decrypted values are kept in memory only, for the
app's start and for masking them in its logs (``mask``)."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel

from spaces_runtime.errors import ConflictError, InvalidNameError, NotFoundError, SpacesError
from spaces_runtime.logs import mask, maskable
from spaces_runtime.store import open_db

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS space_secrets (
    space_id TEXT NOT NULL, key TEXT NOT NULL, ciphertext TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL, PRIMARY KEY (space_id, key)
);
CREATE TABLE IF NOT EXISTS space_variables (
    space_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL, PRIMARY KEY (space_id, key)
);
"""
KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_KEY_LENGTH = 128
MAX_VALUE_BYTES = 64 * 1024
MAX_DESCRIPTION = 500
# What the platform sets itself (the Hub's SPACE_* identity, the SDKs' address and path, the runner's SPACES_*),
# and the BuildKit secret ids of the platform's own builds: a secret or variable by one of these names would
# either be overridden or break the app's start, so it is refused up front. Compared in upper case.
RESERVED = frozenset({
    "SPACE_ID", "SPACE_AUTHOR_NAME", "SPACE_REPO_NAME", "SPACE_TITLE", "SPACE_HOST", "SPACE_CREATOR_USER_ID",
    "SYSTEM", "PORT", "PATH", "HOME", "PYTHONPATH", "VIRTUAL_ENV",
    "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_ROOT_PATH",
    "STREAMLIT_SERVER_ADDRESS", "STREAMLIT_SERVER_PORT", "STREAMLIT_SERVER_BASE_URL_PATH",
    "CA_BUNDLE", "BUILD_ENV",
})
RESERVED_PREFIXES = ("SPACES_",)


class SecretKeyError(SpacesError):
    """The secrets key is missing, unreadable or not the one the stored secrets were sealed with."""


class SecretInfo(BaseModel):
    """What anyone is ever told about a secret: never its value."""

    key: str
    description: str = ""
    updated_at: float


class VariableInfo(BaseModel):
    key: str
    value: str
    description: str = ""
    updated_at: float


# --- pure parts ----------------------------------------------------------------------------------------------
def check_key(key: str) -> str:
    """An environment variable's name that the platform does not set itself (Hugging Face's rule)."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        shown = key[:40] if isinstance(key, str) else type(key).__name__
        raise InvalidNameError(
            f"{shown!r} is not a valid secret or variable name",
            hint=f"use letters, digits and '_', not starting with a digit, at most {MAX_KEY_LENGTH} characters,"
                 " e.g. OPENAI_API_KEY")
    upper = key.upper()
    if upper in RESERVED or upper.startswith(RESERVED_PREFIXES):
        raise InvalidNameError(f"{key} is reserved: the platform sets it for every app itself",
                               hint="choose another name, e.g. MY_" + key.lstrip("_"))
    return key


def check_value(value: str, what: str = "value") -> str:
    """Never names the value itself: this message may reach a log or an HTTP answer."""
    if not isinstance(value, str):
        raise InvalidNameError(f"the {what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidNameError(f"the {what} is empty", hint="delete the secret or variable instead")
    if "\x00" in value:
        raise InvalidNameError(f"the {what} holds a NUL character, which no environment variable can")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise InvalidNameError(f"the {what} is {len(value.encode())} bytes, more than {MAX_VALUE_BYTES}",
                               hint="keep large data in a file of the app, or in a dataset")
    return value


def check_description(description: str | None) -> str:
    if description is None:
        return ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidNameError(f"a description is a string of at most {MAX_DESCRIPTION} characters")
    return description


# --- the key -------------------------------------------------------------------------------------------------
def load_key(path: Path, create: bool) -> bytes:
    """The Fernet key in ``path``; with ``create``, a new one when there is none (0600, in a 0700 folder)."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            raise SecretKeyError(f"the secrets key {path} is missing, so no stored secret can be read",
                                 hint="put back the key file this data dir was used with (a backup does not"
                                      " hold it), or delete the secrets and set them again") from None
    _make_private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(Fernet.generate_key() + b"\n")
    try:
        os.link(partial, path)  # atomic, and never over a key another process made meanwhile
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    log.info("created the secrets key %s", path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the secrets key %s was readable by others (mode %o): made 0600", path, mode & 0o777)
        path.chmod(0o600)
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise SecretKeyError(f"{path} does not hold a Fernet key (32 url-safe base64 bytes)",
                             hint="restore the key file this data dir was used with") from None
    return key


def check_key_place(key_file: Path, *app_reachable: Path) -> Path:
    """The key must not lie where apps' code or environments are (mounted into sandboxes and containers)."""
    resolved = key_file.resolve()
    for folder in app_reachable:
        if resolved.is_relative_to(folder.resolve()):
            raise SecretKeyError(f"SPACES_SECRETS_KEY_FILE={key_file} is inside {folder}, which apps can read",
                                 hint="put the key outside the apps/ and envs/ folders, e.g. DATA_DIR/keys/")
    return key_file


def _make_private_dir(folder: Path) -> None:
    """0700 when the platform makes it; a folder the operator chose is left as it is (it may be /etc), the key
    file's own 0600 guards the key there."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)


class SecretBox:
    """Seals and opens secret values; the key is read (or made) on first use."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    def _cipher(self, create: bool) -> Fernet:
        with self._lock:
            if self._fernet is None:
                self._fernet = Fernet(load_key(self.key_file, create))
            return self._fernet

    def seal(self, space_id: str, key: str, value: str) -> str:
        payload = json.dumps({"space": space_id, "key": key, "value": value}).encode()
        return self._cipher(create=True).encrypt(payload).decode()

    def open(self, space_id: str, key: str, token: str) -> str:
        try:
            payload = json.loads(self._cipher(create=False).decrypt(token.encode()))
        except InvalidToken:
            raise SecretKeyError(f"the secret {key} of {space_id} does not decrypt with the key in {self.key_file}:"
                                 " it was sealed with another key",
                                 hint="put back the key file this data dir was used with, or set the secret"
                                      " again") from None
        if payload.get("space") != space_id or payload.get("key") != key:
            raise SecretKeyError(f"the stored secret {key} of {space_id} was made for another space or name",
                                 hint="the database was edited by hand; set the secret again")
        return str(payload["value"])


# --- storage -------------------------------------------------------------------------------------------------
class SpaceSecrets:
    """Secrets and variables in the platform's SQLite file (tables of their own, like ``Accounts``)."""

    def __init__(self, db_path: Path, key_file: Path) -> None:
        self.box = SecretBox(key_file)
        self._db = open_db(db_path, SCHEMA)
        self._lock = threading.RLock()
        self._values: dict[str, dict[str, str]] = {}  # space → decrypted secrets, dropped on every change
        self._hidden: dict[str, list[str]] = {}

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _forget(self, space_id: str) -> None:
        with self._lock:
            self._values.pop(space_id, None)
            self._hidden.pop(space_id, None)

    def _check_free(self, db: sqlite3.Connection, space_id: str, key: str, other: str) -> None:
        """Hugging Face keeps one name space for both: the app could not tell which of the two it got."""
        if db.execute(f"SELECT 1 FROM {other} WHERE space_id = ? AND key = ?", (space_id, key)).fetchone():
            kind = "secret" if other == "space_secrets" else "variable"
            raise ConflictError(f"{space_id} has a {kind} named {key} already",
                                hint=f"delete the {kind} first, or choose another name")

    # --- secrets ---------------------------------------------------------------------------------------------
    def set_secret(self, space_id: str, key: str, value: str, description: str | None = None) -> SecretInfo:
        check_key(key)
        check_value(value, "secret's value")
        sealed = self.box.seal(space_id, key, value)
        with self._tx() as db:
            self._check_free(db, space_id, key, "space_variables")
            db.execute("INSERT INTO space_secrets (space_id, key, ciphertext, description, updated_at) "
                       "VALUES (?,?,?,?,?) ON CONFLICT (space_id, key) DO UPDATE SET ciphertext = "
                       "excluded.ciphertext, description = excluded.description, updated_at = excluded.updated_at",
                       (space_id, key, sealed, check_description(description), time.time()))
        self._forget(space_id)
        return next(s for s in self.secrets(space_id) if s.key == key)

    def delete_secret(self, space_id: str, key: str) -> None:
        with self._tx() as db:
            gone = db.execute("DELETE FROM space_secrets WHERE space_id = ? AND key = ?", (space_id, key)).rowcount
        self._forget(space_id)
        if not gone:
            raise NotFoundError(f"{space_id} has no secret named {key}",
                                hint=f"`spaces secrets list {space_id}` shows its secrets")

    def secrets(self, space_id: str) -> list[SecretInfo]:
        rows = self._rows("SELECT key, description, updated_at FROM space_secrets WHERE space_id = ? ORDER BY key",
                          (space_id,))
        return [SecretInfo(key=r["key"], description=r["description"], updated_at=r["updated_at"]) for r in rows]

    def secret_values(self, space_id: str) -> dict[str, str]:
        """The decrypted secrets of a space, for its app's environment (and its build, on docker)."""
        with self._lock:
            cached = self._values.get(space_id)
        if cached is not None:
            return dict(cached)
        rows = self._rows("SELECT key, ciphertext FROM space_secrets WHERE space_id = ?", (space_id,))
        values = {r["key"]: self.box.open(space_id, r["key"], r["ciphertext"]) for r in rows}
        with self._lock:
            self._values[space_id] = values
            self._hidden[space_id] = maskable(values.values())
        return dict(values)

    def mask(self, space_id: str, text: str) -> str:
        """``text`` without the values of the space's secrets (the log sink's hook). A key that cannot open them
        hides nothing, but neither does it stop the log: the app's start reports that error."""
        with self._lock:
            hidden = self._hidden.get(space_id)
        if hidden is None:
            try:
                self.secret_values(space_id)
            except SecretKeyError:
                with self._lock:  # not again for every line; a change of the secrets tries again
                    self._hidden[space_id] = []
                return text
            with self._lock:
                hidden = self._hidden.get(space_id, [])
        return mask(text, hidden) if hidden else text

    # --- variables ---------------------------------------------------------------------------------------------
    def set_variable(self, space_id: str, key: str, value: str, description: str | None = None) -> VariableInfo:
        check_key(key)
        check_value(value, "variable's value")
        with self._tx() as db:
            self._check_free(db, space_id, key, "space_secrets")
            db.execute("INSERT INTO space_variables (space_id, key, value, description, updated_at) "
                       "VALUES (?,?,?,?,?) ON CONFLICT (space_id, key) DO UPDATE SET value = excluded.value, "
                       "description = excluded.description, updated_at = excluded.updated_at",
                       (space_id, key, value, check_description(description), time.time()))
        return next(v for v in self.variables(space_id) if v.key == key)

    def delete_variable(self, space_id: str, key: str) -> None:
        with self._tx() as db:
            gone = db.execute("DELETE FROM space_variables WHERE space_id = ? AND key = ?", (space_id, key)).rowcount
        if not gone:
            raise NotFoundError(f"{space_id} has no variable named {key}",
                                hint=f"`spaces variables list {space_id}` shows its variables")

    def variables(self, space_id: str) -> list[VariableInfo]:
        rows = self._rows("SELECT key, value, description, updated_at FROM space_variables WHERE space_id = ? "
                          "ORDER BY key", (space_id,))
        return [VariableInfo(key=r["key"], value=r["value"], description=r["description"],
                             updated_at=r["updated_at"]) for r in rows]

    def variable_values(self, space_id: str) -> dict[str, str]:
        return {v.key: v.value for v in self.variables(space_id)}

    def drop_space(self, space_id: str) -> None:
        """A deleted space's secrets and variables go with it."""
        with self._tx() as db:
            db.execute("DELETE FROM space_secrets WHERE space_id = ?", (space_id,))
            db.execute("DELETE FROM space_variables WHERE space_id = ?", (space_id,))
        self._forget(space_id)
