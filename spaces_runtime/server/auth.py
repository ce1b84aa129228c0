"""Who is calling: the request's credential (a bearer token today; the web session and share links add theirs)
resolved to a Principal, and the permission rule applied to the space a route names."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from spaces_runtime.auth import rules
from spaces_runtime.auth.authenticate import CSRF_HEADER, Credentials
from spaces_runtime.auth.principal import Principal
from spaces_runtime.store import SpaceRecord
from spaces_runtime.wiring.platform import Platform


def platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(platform)]


def credentials(request: Request) -> Credentials:
    return Credentials(authorization=request.headers.get("authorization"), cookies=request.cookies,
                       method=request.method, csrf=request.headers.get(CSRF_HEADER),
                       secure=request.url.scheme == "https")


def principal_of(request: Request, p: PlatformDep) -> Principal:
    """A bad token is a 401 even on a read: the caller meant to be someone, and should hear it did not work."""
    return p.auth.principal(credentials(request))


PrincipalDep = Annotated[Principal, Depends(principal_of)]


def seen(p: Platform, principal: Principal, space_id: str) -> SpaceRecord:
    """The space, or 404 if there is none the caller may see."""
    record = p.store.get(space_id)
    rules.require_see(principal, space_id, record.private)
    return record


def writable(p: Platform, principal: Principal, space_id: str) -> SpaceRecord | None:
    """The space (None when it does not exist yet), if the caller may write it; 401, 403 or 404 otherwise."""
    record = p.store.find(space_id)
    rules.require_write(principal, space_id, record.private if record is not None else False)
    return record


def changeable(p: Platform, principal: Principal, space_id: str) -> SpaceRecord:
    """An existing space the caller may write: 401 before anything else, then 404, then 403."""
    rules.require_signed_in(principal)
    record = seen(p, principal, space_id)
    rules.require_write(principal, space_id, record.private)
    return record


def visible(p: Platform, principal: Principal, records: list[SpaceRecord]) -> list[SpaceRecord]:
    return [r for r in records if rules.may_see(principal, r.id, r.private)]


def require_admin(principal: PrincipalDep) -> Principal:
    rules.require_admin(principal)
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
