"""The first admin and the local admin token: made on first start, so that `spaces deploy` on the platform's own
machine works with no typing, while every write still carries a token."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from spaces_runtime.auth.accounts import ENV_TOKEN, LOCAL_TOKEN, Accounts, hash_token
from spaces_runtime.auth.authenticate import Authenticator
from spaces_runtime.auth.sessions import Lifetimes, Sessions
from spaces_runtime.auth.shares import ShareLinks
from spaces_runtime.auth.signing import Signer, load_key
from spaces_runtime.auth.throttle import Limits
from spaces_runtime.config import Settings
from spaces_runtime.store import Store

log = logging.getLogger("spaces_runtime")
ADMIN = "admin"


def make_authenticator(settings: Settings, accounts: Accounts, store: Store) -> Authenticator:
    """Session cookies and share links are signed with a key of their own, in the data dir's keys folder."""
    key = load_key(settings.data_dir / "keys" / "signing.key")
    limits = Limits(settings.sign_in_failures_per_account, settings.sign_in_failures_per_address,
                    settings.sign_in_window_s)
    sessions = Sessions(settings.db_path, Lifetimes(settings.session_idle_s, settings.session_absolute_s))
    return Authenticator(accounts, Signer(key, "session"), ShareLinks(Signer(key, "share")), store.share_key,
                         sessions, limits)


def token_file(settings: Settings) -> Path:
    return settings.data_dir / "token"


def ensure_admin(settings: Settings, accounts: Accounts) -> Path:
    """An admin user on first start; its token in ``{data_dir}/token`` (0600: the platform's user reads it, apps
    do not). A token already there (an older data dir, a restore) or given as SPACES_TOKEN stays valid."""
    if not accounts.has_users():
        accounts.add_user(ADMIN, admin=True)
        log.info("created the admin user %r", ADMIN)
    path = token_file(settings)
    if path.exists():
        _adopt(accounts, path.read_text().strip(), LOCAL_TOKEN)
    else:
        _, secret = accounts.create_token(_first_admin(accounts), LOCAL_TOKEN)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret + "\n")
    if settings.token:
        _adopt(accounts, settings.token, ENV_TOKEN)
    return path


def _first_admin(accounts: Accounts) -> str:
    return next(user.name for user in accounts.users() if user.admin)


def _adopt(accounts: Accounts, secret: str, name: str) -> None:
    if secret and accounts.principal(secret) is None and not any(
            t.revoked for t in accounts.tokens() if t.name == name and _same(accounts, t.id, secret)):
        accounts.add_token_hash(_first_admin(accounts), name, hash_token(secret))


def _same(accounts: Accounts, token_id: int, secret: str) -> bool:
    return accounts.token_hash(token_id) == hash_token(secret)
