"""Accounts in a real SQLite file: tokens are stored as hashes only, revoked at once, and carry their role."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spaces_runtime.auth.accounts import Accounts
from spaces_runtime.auth.passwords import check_password, hash_password
from spaces_runtime.errors import ConflictError, InvalidNameError


def test_a_token_is_stored_only_as_a_hash_and_revoked_at_once(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "spaces.db")
    accounts.add_user("alice")
    info, secret = accounts.create_token("alice", "laptop", "read")
    stored = sqlite3.connect(tmp_path / "spaces.db").execute("SELECT * FROM tokens").fetchall()
    assert secret not in repr(stored)
    who = accounts.principal(secret)
    assert who is not None and who.name == "alice" and who.cap == "read" and who.token_id == info.id
    accounts.revoke(info.id)
    assert accounts.principal(secret) is None
    assert accounts.principal(secret + "x") is None


def test_roles_follow_memberships(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "spaces.db")
    accounts.add_user("alice")
    accounts.add_org("team")
    accounts.set_member("team", "alice", "write")
    _, secret = accounts.create_token("alice")
    assert accounts.principal(secret).orgs == {"team": "write"}  # type: ignore[union-attr]
    accounts.set_member("team", "alice", "read")
    assert accounts.principal(secret).orgs == {"team": "read"}  # type: ignore[union-attr]


def test_names_are_checked_and_unique_across_users_and_orgs(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "spaces.db")
    accounts.add_user("alice")
    with pytest.raises(ConflictError):
        accounts.add_org("alice")
    with pytest.raises(InvalidNameError):
        accounts.add_user("api")  # a platform route
    with pytest.raises(InvalidNameError, match="role 'owner'"):
        accounts.set_member("team", "alice", "owner")


def test_passwords_are_argon2_hashes() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert check_password("correct horse battery", hashed)
    assert not check_password("wrong", hashed)
    assert not check_password("anything", None)
