"""Where a user is signed in: the page ``/settings/sessions`` (each browser's session, end one, or sign out
everywhere) and the same over REST (``/api/sessions``; admins end anyone's, as when a laptop is lost).

The page's buttons are plain forms carrying the session's CSRF token as a field; the Authenticator checks it as
it checks the header on any other write a cookie authenticates."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from spaces_runtime.auth import rules
from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.auth.sessions import SessionInfo
from spaces_runtime.errors import ForbiddenError, NotFoundError, SpacesError
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, credentials
from spaces_runtime.server.gallery import page, viewer
from spaces_runtime.server.web import form, signed_out
from spaces_runtime.wiring.platform import Platform

router = APIRouter()
PAGE = "/settings/sessions"


# --- the page ---------------------------------------------------------------------------------------------------
@router.get(PAGE, response_class=HTMLResponse, include_in_schema=False)
def sessions_page(request: Request) -> Response:
    p: Platform = request.app.state.platform
    who = viewer(request)
    if who.anonymous:
        return RedirectResponse("/login?" + urlencode({"next": PAGE}), 303)
    return page(request, "sessions.html", who, sessions=p.auth.sessions.of(str(who.name), who.session_id))


async def _form_principal(request: Request) -> tuple[Principal, dict[str, str]]:
    """The signed-in browser posting a form, its CSRF token taken from the form's field."""
    fields = await form(request)
    try:
        who = request.app.state.platform.auth.principal(replace(credentials(request), csrf=fields.get("csrf")))
    except SpacesError:
        who = ANONYMOUS
    return who, fields


def _refused(request: Request) -> HTMLResponse:
    return page(request, "notice.html", status_code=403, heading="Nothing was signed out",
                message="This form did not come from a page of this platform, or you were signed out already. "
                        "Open Sessions again and use its buttons.")


@router.post(PAGE + "/{session_id}/end", include_in_schema=False)
async def end_one(session_id: int, request: Request) -> Response:
    p: Platform = request.app.state.platform
    who, _ = await _form_principal(request)
    if who.via != "session" or p.auth.sessions.owner(session_id) != who.name:
        return _refused(request)  # another user's session is as absent as one that ended
    p.auth.sessions.end_by_id(session_id)
    p.accounts.audit(who, "end session", str(who.name), f"session {session_id}, from the web")
    return signed_out(request) if session_id == who.session_id else RedirectResponse(PAGE, 303)


@router.post(PAGE + "/end-all", include_in_schema=False)
async def end_everywhere(request: Request) -> Response:
    """Sign out everywhere: every session of this user ends, this browser's too."""
    p: Platform = request.app.state.platform
    who, _ = await _form_principal(request)
    if who.via != "session":
        return _refused(request)
    ended = p.auth.sessions.end_all(str(who.name))
    p.accounts.audit(who, "sign out everywhere", str(who.name), f"{ended} sessions, from the web")
    return signed_out(request)


# --- REST ---------------------------------------------------------------------------------------------------------
def _whose(who: Principal, user: str | None) -> str:
    rules.require_signed_in(who)
    wanted = user or str(who.name)
    if wanted != who.name:
        rules.require_admin(who)
    elif who.cap == "read" and who.via != "session":
        raise ForbiddenError("a read token cannot end sessions", hint="use a write token")
    return wanted


@router.get("/api/sessions")
def list_sessions(p: PlatformDep, who: PrincipalDep, user: str | None = None) -> list[SessionInfo]:
    """The web sessions of the caller (an admin: of ``user``)."""
    rules.require_signed_in(who)
    wanted = user or str(who.name)
    if wanted != who.name:
        rules.require_admin(who)
    return p.auth.sessions.of(wanted, who.session_id)


@router.delete("/api/sessions/{session_id}")
def end_session(session_id: int, p: PlatformDep, who: PrincipalDep) -> dict[str, object]:
    owner = p.auth.sessions.owner(session_id)
    if owner is None or (owner != who.name and not who.admin):
        rules.require_signed_in(who)
        raise NotFoundError(f"no session {session_id} of yours", hint="`spaces sessions list` shows them")
    _whose(who, owner)
    p.auth.sessions.end_by_id(session_id)
    p.accounts.audit(who, "end session", owner, f"session {session_id}")
    return {"id": session_id, "user": owner, "ended": True}


@router.delete("/api/sessions")
def end_all_sessions(p: PlatformDep, who: PrincipalDep, user: str | None = None) -> dict[str, object]:
    """Sign ``user`` (default: the caller) out everywhere."""
    wanted = _whose(who, user)
    p.accounts.user(wanted)  # 404 for a user who does not exist
    ended = p.auth.sessions.end_all(wanted)
    p.accounts.audit(who, "sign out everywhere", wanted, f"{ended} sessions")
    return {"user": wanted, "ended": ended}
