"""The runner's signed app identities: every request carries ``{app_id}.{signature}``, made with a secret only
the platform holds, so the runner learns who calls from the token, not from a claim."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

ADMIN = "@admin"  # the platform itself (REST API, `spaces models`): may set quotas, pin and unload models


def read_secret(path: Path) -> bytes:
    """The runner's signing key, made on first use and readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def app_token(secret: bytes, app_id: str) -> str:
    """``{app_id}.{signature}``: the runner learns who calls from the token, not from a claim."""
    sig = hmac.new(secret, app_id.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{app_id}.{sig}"


def verify_token(secret: bytes, token: str) -> str | None:
    """The app id a token was issued for, or None when it was not signed with ``secret``."""
    app_id, _, _ = token.rpartition(".")
    if not app_id or not hmac.compare_digest(app_token(secret, app_id), token):
        return None
    return app_id
