"""Accounts over REST: who am I (also in the Hub's whoami-v2 shape), users, organizations and their members,
tokens (shown once), a space's visibility, and the audit trail of writes."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from spaces_runtime.auth import rules
from spaces_runtime.auth.accounts import PLATFORM_TOKENS, AuditEvent, TokenInfo, UserInfo
from spaces_runtime.auth.passwords import MIN_LENGTH, hash_password
from spaces_runtime.auth.principal import Principal, Role
from spaces_runtime.auth.shares import SHARE_PARAM, parse_duration
from spaces_runtime.errors import ForbiddenError, InvalidNameError
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.auth import AdminDep, PlatformDep, PrincipalDep, changeable
from spaces_runtime.server.views import links as space_links

router = APIRouter(prefix="/api")
MAX_PASSWORD = 1024  # argon2 takes any length; this keeps one request from costing much


class NewUser(BaseModel):
    name: str
    admin: bool = False


class NewOrg(BaseModel):
    name: str


class Membership(BaseModel):
    role: Role = "write"


class NewToken(BaseModel):
    user: str | None = None  # default: the caller
    name: str = "cli"
    role: Role = "write"


class SpaceSettings(BaseModel):
    private: bool | None = None


@router.get("/whoami-v2")
def whoami(p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    """The caller, in the shape `huggingface_hub.whoami()` reads."""
    rules.require_signed_in(who)
    token = p.accounts.token(who.token_id) if who.token_id is not None else None
    return {"type": "user", "name": who.name, "fullname": who.name, "isAdmin": who.admin,
            "orgs": [{"type": "org", "name": org, "roleInOrg": role} for org, role in sorted(who.orgs.items())],
            "auth": {"type": "access_token",
                     "accessToken": {"displayName": token.name if token else "", "role": who.cap}}}


@router.get("/users")
def users(p: PlatformDep, _: AdminDep) -> list[UserInfo]:
    return p.accounts.users()


@router.post("/users", status_code=201)
def add_user(body: NewUser, p: PlatformDep, who: AdminDep) -> UserInfo:
    user = p.accounts.add_user(body.name, admin=body.admin)
    p.accounts.audit(who, "add user", body.name, "admin" if body.admin else "")
    return user


@router.get("/orgs")
def orgs(p: PlatformDep, who: PrincipalDep) -> dict[str, dict[str, Role]]:
    """Every organization for admins; the caller's own for everyone else."""
    rules.require_signed_in(who)
    found = p.accounts.orgs()
    return found if who.admin else {name: members for name, members in found.items() if name in who.orgs}


@router.post("/users/{user}/disable")
def disable_user(user: str, p: PlatformDep, who: AdminDep) -> UserInfo:
    """Their tokens and password open nothing and their browsers are signed out, until enabled again."""
    if user == who.name:
        raise ForbiddenError("an admin cannot disable their own account", hint="ask another admin")
    info = p.accounts.set_disabled(user, True)
    ended = p.auth.sessions.end_all(user)
    p.accounts.audit(who, "disable user", user, f"{ended} sessions ended")
    return info


@router.post("/users/{user}/enable")
def enable_user(user: str, p: PlatformDep, who: AdminDep) -> UserInfo:
    info = p.accounts.set_disabled(user, False)
    p.accounts.audit(who, "enable user", user)
    return info


@router.post("/orgs", status_code=201)
def add_org(body: NewOrg, p: PlatformDep, who: AdminDep) -> dict[str, str]:
    p.accounts.add_org(body.name)
    p.accounts.audit(who, "add org", body.name)
    return {"name": body.name}


@router.put("/orgs/{org}/members/{user}")
def set_member(org: str, user: str, body: Membership, p: PlatformDep, who: PrincipalDep) -> dict[str, str]:
    _require_org_admin(who, org)
    p.accounts.set_member(org, user, body.role)
    p.accounts.audit(who, "set member", org, f"{user}: {body.role}")
    return {"org": org, "user": user, "role": body.role}


@router.delete("/orgs/{org}/members/{user}")
def remove_member(org: str, user: str, p: PlatformDep, who: PrincipalDep) -> dict[str, str]:
    _require_org_admin(who, org)
    p.accounts.remove_member(org, user)
    p.accounts.audit(who, "remove member", org, user)
    return {"org": org, "user": user}


def _require_org_admin(who: Principal, org: str) -> None:
    rules.require_signed_in(who)
    if not rules.may_manage_org(who, org):
        raise ForbiddenError(f"{who.name} is neither a platform admin nor an admin of {org}",
                             hint="ask an admin of the organization")


@router.get("/tokens")
def tokens(p: PlatformDep, who: PrincipalDep, user: str | None = None) -> list[TokenInfo]:
    rules.require_signed_in(who)
    wanted = user or (None if who.admin else who.name)
    if wanted != who.name and not who.admin:
        raise ForbiddenError(f"{who.name} may list only their own tokens")
    return p.accounts.tokens(wanted)


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    """The secret is in this answer and nowhere else, ever."""
    rules.require_signed_in(who)
    user = body.user or str(who.name)
    if user != who.name:
        rules.require_admin(who)
    elif who.cap == "read" and body.role != "read":
        raise ForbiddenError("a read token cannot create a write token", hint="use a write token")
    info, secret = p.accounts.create_token(user, body.name, body.role)
    p.accounts.audit(who, "create token", user, f"{info.name} ({info.role}, id {info.id})")
    return {**info.model_dump(), "token": secret}


@router.delete("/tokens")
def revoke_all_tokens(p: PlatformDep, who: PrincipalDep, user: str | None = None) -> dict[str, Any]:
    """Every token of ``user`` (default: the caller) revoked, and the web sessions that came with them ended: for a
    user whose machine was stolen."""
    rules.require_signed_in(who)
    wanted = user or str(who.name)
    if wanted != who.name:
        rules.require_admin(who)
    elif who.cap == "read":
        raise ForbiddenError("a read token cannot revoke tokens", hint="use a write token")
    # the platform's own token (in its data dir, on its own machine: not what a stolen laptop held) stays, or the
    # CLI on the platform's machine would stop working; it is revoked by id when that is meant
    revoked = p.accounts.revoke_all(wanted, spare=PLATFORM_TOKENS)
    kept = [t.id for t in p.accounts.tokens(wanted) if t.name in PLATFORM_TOKENS and not t.revoked]
    ended = p.auth.sessions.end_all(wanted)
    p.accounts.audit(who, "revoke all tokens", wanted, f"{len(revoked)} tokens, {ended} sessions")
    return {"user": wanted, "revoked": revoked, "kept": kept, "sessions_ended": ended}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: int, p: PlatformDep, who: PrincipalDep) -> TokenInfo:
    rules.require_signed_in(who)
    info = p.accounts.token(token_id)
    if info.user != who.name:
        rules.require_admin(who)
    revoked = p.accounts.revoke(token_id)
    ended = p.auth.sessions.end_by_token(token_id)  # a browser signed in with it was only as good as the token
    p.accounts.audit(who, "revoke token", info.user, f"{info.name} (id {token_id}); {ended} sessions ended")
    return revoked


@router.put("/spaces/{owner}/{name}/settings")
def space_settings(owner: str, name: str, body: SpaceSettings, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    if body.private is not None:
        p.store.update(space_id, private=body.private)
        p.accounts.audit(who, "set visibility", space_id, "private" if body.private else "public")
    return {"id": space_id, "private": p.store.get(space_id).private}


class ShareRequest(BaseModel):
    expires: str = "24h"


@router.post("/spaces/{owner}/{name}/share")
def share(owner: str, name: str, body: ShareRequest, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    """A link that opens the space for anyone holding it until it expires (both link forms)."""
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    seconds = parse_duration(body.expires)
    key = p.store.share_key(space_id) or ""
    token = p.auth.shares.make(space_id, key, seconds)
    links = space_links(space_id, p.settings.public_link_host)
    p.accounts.audit(who, "share", space_id, f"link valid for {body.expires}")
    return {"id": space_id, "expires_at": time.time() + seconds,
            "url": f"{links['url']}?{SHARE_PARAM}={token}", "host_url": f"{links['host_url']}?{SHARE_PARAM}={token}"}


@router.post("/spaces/{owner}/{name}/share/revoke")
def revoke_shares(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, str]:
    """Every share link of the space stops working at once."""
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    p.store.rotate_share_key(space_id)
    p.accounts.audit(who, "revoke share links", space_id)
    return {"id": space_id, "shares": "revoked"}


@router.get("/audit")
def audit(p: PlatformDep, who: PrincipalDep, space: str | None = None, limit: int = 200) -> list[AuditEvent]:
    """Every write: who, what, when, with which token. Admins see all; a space's writers see its own."""
    rules.require_signed_in(who)
    if space is None:
        rules.require_admin(who)
    else:
        changeable(p, who, space)
    return p.accounts.audit_events(space, limit)


# --- web sign-in passwords (spaces users passwd) ----------------------------------------------------------------
@router.put("/users/{user}/password")
async def set_password(user: str, request: Request, p: PlatformDep, who: PrincipalDep) -> dict[str, str]:
    """Body {"password": "..."}: admins set anyone's, a user their own. Read by hand (a validation error would echo
    the body), stored only as its argon2 hash."""
    rules.require_signed_in(who)
    if user != who.name:
        rules.require_admin(who)
    elif who.cap == "read":
        raise ForbiddenError("a read token cannot set a password", hint="use a write token")
    try:
        password = json.loads(await request.body() or b"null").get("password")
    except (ValueError, AttributeError):
        password = None
    if not isinstance(password, str) or not MIN_LENGTH <= len(password) <= MAX_PASSWORD:
        raise InvalidNameError(f"a password is {MIN_LENGTH} to {MAX_PASSWORD} characters",
                               hint='send {"password": "..."}; a passphrase of a few words is easy to type')
    p.accounts.user(user)  # 404 before the slow hash
    p.accounts.set_password_hash(user, await run_in_threadpool(hash_password, password))
    # a new password locks out whoever knew the old one: their browsers' sessions end (not the asking one's)
    ended = p.auth.sessions.end_all(user, keep=who.session_id if user == who.name else None)
    p.accounts.audit(who, "set password", user, f"{ended} other sessions ended" if ended else "")
    return {"user": user, "password": "set"}
