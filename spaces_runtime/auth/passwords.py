"""Passwords for the web sign-in, hashed with argon2id (argon2-cffi's defaults), never stored in the clear."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(password: str, password_hash: str | None) -> bool:
    if not password_hash:
        _HASHER.hash(password)  # as slow as a real check: whether a user has a password does not show in timing
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
