"""The browser's side of accounts: sign-in (a password or a token) and sign-out, and a space's settings page.

Sign-in starts a session on the server and sets the signed cookie ``Authenticator.start_session`` makes: HttpOnly,
SameSite=Lax, and over HTTPS Secure with the ``__Host-`` prefix; sign-out ends the session on the server, so a
copy of the cookie stops working too. Every write a signed-in browser makes then needs the session's CSRF token:
the settings page's script sends it as the X-CSRF-Token header (the Authenticator checks it on every non-GET
request that a cookie authenticates), and the sign-out form sends it as a field, checked here. SameSite alone is
not enough: every port of a host is the same site, so a page on another port of this machine could make the
browser post here."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from spaces_runtime.auth import rules
from spaces_runtime.auth.authenticate import session_cookie_name
from spaces_runtime.auth.passwords import check_password
from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.server import space_files
from spaces_runtime.server.auth import credentials
from spaces_runtime.server.gallery import find_record, missing, page, viewer
from spaces_runtime.server.views import space_view
from spaces_runtime.wiring.platform import Platform

router = APIRouter(include_in_schema=False)
router.include_router(space_files.router)  # the app page's Files tab and Duplicate page
MAX_FORM_BYTES = 16 * 1024
WRONG_PASSWORD = "That user name and password do not match. Check both, or sign in with a token."
WRONG_TOKEN = "That token is not valid: it was revoked, mistyped, or made by another platform."
READ_TOKEN = ("That is a read-only token, and a signed-in browser can write. Sign in with a write token or a "
              "password.")
DISABLED = "This account is disabled. Ask an admin of this platform to enable it."
EXPIRIES = (("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"))


# --- pure decisions ---------------------------------------------------------------------------------------
def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this platform only, never another site (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def same_origin(request: Request) -> bool:
    """A form posted from a page of this platform. Browsers send Origin with every POST; none (a script, curl) is
    allowed, since only a browser can be tricked into posting."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}", f"http://{host}", f"https://{host}")


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form, read by hand: never echoed back (it holds a password)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return {k: v for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)}


# --- sign-in and sign-out ---------------------------------------------------------------------------------
def login_page(request: Request, status_code: int = 200, problem: str = "", user: str = "",
               method: str = "password", next_path: str = "/") -> HTMLResponse:
    who = viewer(request)
    next_path = safe_next(next_path)
    return page(request, "login.html", who, status_code, problem=problem, user=user, method=method,
                next_path=next_path, here=next_path)  # the header's "Sign in" keeps where to go next


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next_path: str = Query("/", alias="next")) -> HTMLResponse:
    return login_page(request, next_path=next_path)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    p: Platform = request.app.state.platform
    fields = await form(request)
    next_path = safe_next(fields.get("next"))
    if not same_origin(request):  # login CSRF: another site signing this browser in as someone else
        return login_page(request, 403, "This sign-in form was sent from another site; sign in here instead.",
                          next_path=next_path)
    method = "token" if fields.get("method") == "token" else "password"
    account = fields.get("user", "").strip()[:100] if method == "password" else ""
    address = request.client.host if request.client else ""
    if wait := p.auth.sign_ins.retry_after(account, address):  # refused before any password is checked
        return throttled(request, wait, account, method, next_path)
    token_id: int | None = None
    if method == "token":
        user, problem, token_id = _by_token(p, fields.get("token", "").strip())
    else:
        user, problem = await run_in_threadpool(_by_password, p, fields.get("user", "").strip(),
                                                fields.get("password", ""))
    if user is None:
        p.auth.sign_ins.failed(account, address)
        p.accounts.audit(ANONYMOUS, "sign in refused", account, method)
        return login_page(request, 401, problem, user=fields.get("user", "")[:100], method=method,
                          next_path=next_path)
    session = p.auth.start_session(user, request.headers.get("user-agent", ""), address, token_id)
    p.accounts.audit(p.accounts.principal_of(user), "sign in", user, f"web, with a {method}")
    answer = RedirectResponse(next_path, 303, headers={"Cache-Control": "no-store"})
    secure = request.url.scheme == "https"
    answer.set_cookie(session_cookie_name(secure), session.cookie, max_age=int(p.auth.sessions.lifetimes.absolute_s),
                      path="/", httponly=True, samesite="lax", secure=secure)
    return answer


def signed_out(request: Request, to: str = "/") -> Response:
    """Back to ``to`` with the browser's session cookie gone (its session has ended on the server already)."""
    answer = RedirectResponse(to, 303, headers={"Cache-Control": "no-store"})
    secure = request.url.scheme == "https"
    answer.delete_cookie(session_cookie_name(secure), path="/", httponly=True, samesite="lax", secure=secure)
    return answer


def throttled(request: Request, wait: int, account: str, method: str, next_path: str) -> HTMLResponse:
    """429 with when to retry: too many failed sign-ins for this account or from this address lately."""
    at = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
    whose = f"for {account} or from your address" if account else "from your address"
    answer = login_page(request, 429, f"Too many failed sign-ins {whose}. Try again in {wait} seconds (at {at}).",
                        user=account, method=method, next_path=next_path)
    answer.headers["Retry-After"] = str(wait)
    return answer


def _by_password(p: Platform, user: str, password: str) -> tuple[str | None, str]:
    """The user, if the password is theirs. An unknown user costs the same argon2 work as a wrong password, so
    the answer's timing does not tell which names exist."""
    stored = p.accounts.password_hash(user) if user and len(user) <= 100 else None
    if not check_password(password, stored):
        return None, WRONG_PASSWORD
    if p.accounts.active(user) is None:  # said only to whoever knows the password
        return None, DISABLED
    return user, ""


def _by_token(p: Platform, token: str) -> tuple[str | None, str, int | None]:
    """The token's user, why not, and the token's id (revoking it ends the session)."""
    who = p.accounts.principal(token) if token else None
    if who is None or who.name is None:
        return None, WRONG_TOKEN, None
    if who.cap == "read":  # the session would not keep the cap: refuse rather than widen it
        return None, READ_TOKEN, None
    return who.name, "", who.token_id


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Needs the session's CSRF token (the form's field or the header): another page cannot sign a user out."""
    p: Platform = request.app.state.platform
    fields = await form(request)
    expected = p.auth.session_csrf(credentials(request))
    sent = fields.get("csrf") or request.headers.get("x-csrf-token") or ""
    if expected is not None and not secrets.compare_digest(sent, expected):
        return page(request, "notice.html", status_code=403, heading="Not signed out",
                    message="This sign-out did not come from a page of this platform. Use the Sign out button.")
    p.auth.end_session(credentials(request))
    return signed_out(request)


# --- a space's settings -----------------------------------------------------------------------------------
@router.get("/{owner}/{name}/settings", response_class=HTMLResponse)
def settings_page(owner: str, name: str, request: Request) -> Response:
    """For those who may write the space. Others: 404 if they may not see it, else sign in or 403."""
    p: Platform = request.app.state.platform
    who = viewer(request)
    record = find_record(request, owner, name, who)
    if record is None:
        return missing(request, f"{owner}/{name}", who)
    if who.anonymous:
        return RedirectResponse("/login?" + urlencode({"next": request.url.path}), 303)
    if not rules.may_write(who, record.owner):
        return page(request, "notice.html", who, 403, heading=f"You cannot change {record.id}",
                    message=_why_not(who, record.owner))
    return page(request, "settings.html", who, **settings_context(p, record.id, space_view(
        record, p.settings.public_link_host)))


def settings_context(p: Platform, space_id: str, space: dict[str, Any]) -> dict[str, Any]:
    return {"s": space, "secrets": p.secrets.secrets(space_id), "variables": p.secrets.variables(space_id),
            "sleep_after_s": p.settings.sleep_after_s, "expiries": EXPIRIES}


def _why_not(who: Principal, owner: str) -> str:
    if who.cap == "read":
        return "You are signed in with a read-only token. Sign in again with a write token or a password."
    return (f"{owner}/ is neither your namespace nor an organization where you have write access. Ask an admin "
            f"of {owner} for write access.")
