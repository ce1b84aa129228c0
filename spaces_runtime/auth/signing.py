"""Signed values the platform hands to browsers: share links and session cookies (itsdangerous, not home-made
HMAC). The signing key lives in its own file of the data dir's keys folder (0600), never where apps can read."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer


def load_key(path: Path) -> bytes:
    """The key in ``path``, made on first use (32 random bytes, the folder 0700, the file 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


class Signer:
    """Signs small JSON payloads for one purpose ('share', 'session'): a value signed for one never passes as the
    other."""

    def __init__(self, key: bytes, purpose: str) -> None:
        self._serializer = URLSafeSerializer(key, salt=f"spaces-runtime {purpose}")

    def for_purpose(self, purpose: str) -> Signer:
        """A signer with the same key for another purpose (its values never pass as this one's)."""
        return Signer(self._serializer.secret_keys[-1], purpose)

    def sign(self, payload: dict[str, object], extra_key: str = "") -> str:
        return self._with(extra_key).dumps(payload)

    def verify(self, value: str, extra_key: str = "") -> dict[str, object] | None:
        """The payload, or None when the value was not signed by this platform for this purpose (and key)."""
        try:
            payload = self._with(extra_key).loads(value)
        except BadSignature:
            return None
        return payload if isinstance(payload, dict) else None

    def _with(self, extra_key: str) -> URLSafeSerializer:
        if not extra_key:
            return self._serializer
        return URLSafeSerializer(self._serializer.secret_keys[-1] + extra_key.encode(), salt=self._serializer.salt)
