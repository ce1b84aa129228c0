"""The permission rule (pure): who may see a space and who may write into a namespace.

A user writes their own namespace and those of organizations where they have write or admin; an admin writes
everything; a token's role caps what it can do (a read token never writes). Private spaces are visible to the
owner, the owner organization's members and admins; to everyone else they do not exist (404, never 403, so that a
private space's name does not leak)."""

from __future__ import annotations

from spaces_runtime.auth.principal import Principal
from spaces_runtime.errors import AuthError, ForbiddenError, NotFoundError

LOGIN_HINT = "pass a token: `spaces login`, SPACES_TOKEN, or the header 'Authorization: Bearer TOKEN'"


def may_see(principal: Principal, space_id: str, private: bool) -> bool:
    if not private or space_id in principal.shared:
        return True
    if principal.name is None:
        return False
    owner = space_id.split("/", 1)[0]
    return principal.admin or principal.name == owner or owner in principal.orgs


def may_write(principal: Principal, owner: str) -> bool:
    if principal.name is None or principal.cap == "read":
        return False
    if principal.admin or principal.name == owner:
        return True
    return principal.orgs.get(owner) in ("write", "admin")


def may_administer(principal: Principal) -> bool:
    """Accounts, organizations and the platform's housekeeping."""
    return principal.admin and principal.cap != "read"


def may_manage_org(principal: Principal, org: str) -> bool:
    return may_administer(principal) or (principal.cap != "read" and principal.orgs.get(org) == "admin")


def require_signed_in(principal: Principal) -> None:
    if principal.name is None:
        raise AuthError("this needs a token, and the request has none (or it was revoked)", hint=LOGIN_HINT)


def require_see(principal: Principal, space_id: str, private: bool) -> None:
    if not may_see(principal, space_id, private):
        raise NotFoundError(f"no space named {space_id}", hint="`spaces list` shows the spaces there are")


def require_write(principal: Principal, space_id: str, private: bool = False) -> None:
    """401 for nobody, 404 for a private space the caller cannot see, 403 for someone else's namespace."""
    require_signed_in(principal)
    require_see(principal, space_id, private)
    owner = space_id.split("/", 1)[0]
    if not may_write(principal, owner):
        raise ForbiddenError(_why_not(principal, owner), hint="ask an admin of the organization for write access,"
                             " or deploy into your own namespace")


def require_admin(principal: Principal) -> None:
    require_signed_in(principal)
    if not may_administer(principal):
        raise ForbiddenError(f"{principal.describe()} is not a platform admin (or the token is read-only)",
                             hint="ask an admin, or use an admin's write token")


def _why_not(principal: Principal, owner: str) -> str:
    if principal.cap == "read":
        return f"the token of {principal.name} is read-only; writing into {owner}/ needs a write token"
    if owner in principal.orgs:
        return f"{principal.name} has the role {principal.orgs[owner]!r} in {owner}, which cannot write"
    return f"{owner}/ is not the namespace of {principal.name}, nor an organization where {principal.name} writes"
