"""The caller of a request, as the permission rule sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["read", "write", "admin"]
ROLES: tuple[Role, ...] = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    """``name`` None is nobody (no or no valid credential). ``cap`` is the role the credential is limited to (a
    read token of an admin reads only); ``orgs`` maps each organization the user belongs to to their role."""

    name: str | None
    admin: bool = False
    cap: Role = "write"
    orgs: dict[str, Role] = field(default_factory=dict)
    token_id: int | None = None  # which token made the request (for the audit trail)
    shared: frozenset[str] = frozenset()  # private spaces a share link opens for this caller, whoever they are
    via: str = "token"  # token | session (a signed-in browser) | none
    session_id: int | None = None  # the signed-in browser's session (auth/sessions.py)

    @property
    def anonymous(self) -> bool:
        return self.name is None

    def describe(self) -> str:
        return "nobody (no token)" if self.name is None else self.name


ANONYMOUS = Principal(None, via="none")
