"""Owner and app names: what the platform accepts, and which names it keeps for its own routes."""

from __future__ import annotations

import re

from spaces_runtime.errors import InvalidNameError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9\-_.]{0,95}")
# First path segments the platform serves itself: an owner by that name would shadow the gallery's app page.
RESERVED_OWNERS = frozenset({
    "api", "spaces", "static", "assets", "docs", "redoc", "metrics", "openapi.json", "health", "healthz",
    "models", "new", "login", "logout", "settings", "favicon.ico", "robots.txt", "_platform",
})


def check_name(value: str, what: str = "name") -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidNameError(
            f"{what} {value!r} is not allowed",
            hint="use 1-96 characters of a-z, 0-9, '-', '_' and '.', starting with a letter or digit",
        )
    if value.endswith(".") or ".." in value:
        raise InvalidNameError(f"{what} {value!r} is not allowed", hint="do not end with '.' or use '..'")
    return value


def space_id(owner: str, name: str) -> str:
    """Validate both parts and join them as the platform's id, ``owner/name``."""
    check_name(owner, "owner")
    check_name(name, "name")
    if owner in RESERVED_OWNERS:
        raise InvalidNameError(f"owner {owner!r} is reserved by the platform", hint="choose another owner name")
    return f"{owner}/{name}"


def split_id(value: str) -> tuple[str, str]:
    """``owner/name`` → (owner, name), validated; a bare name is not an id."""
    owner, sep, name = value.partition("/")
    if not sep:
        raise InvalidNameError(f"{value!r} is not OWNER/NAME", hint="write it as owner/name, e.g. alice/demo")
    space_id(owner, name)
    return owner, name
