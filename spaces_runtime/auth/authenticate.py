"""From a request's credentials to a Principal, the same way for the REST API and the gateway: a bearer token, a
signed-in browser's session cookie, and share-link cookies (each opens one private space to whoever holds it).

A session cookie is the signed id of a session kept on the server (auth/sessions.py): it is good only while that
session lasts. Over HTTPS its name has the ``__Host-`` prefix (Secure, Path=/, no Domain: an app on a subdomain
cannot plant one in a browser), and only that name is read there; over plain HTTP the plain name, as before."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from spaces_runtime.auth import rules
from spaces_runtime.auth.accounts import Accounts
from spaces_runtime.auth.passes import Passes, pass_cookie_name
from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.auth.rules import LOGIN_HINT
from spaces_runtime.auth.sessions import Live, Sessions
from spaces_runtime.auth.shares import ShareLinks, cookie_name
from spaces_runtime.auth.signing import Signer
from spaces_runtime.auth.throttle import Limits, SignInThrottle
from spaces_runtime.errors import AuthError

SESSION_COOKIE = "spaces_session"
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ShareKeyOf = Callable[[str], str | None]  # space id → its current share key (None: no such space)


@dataclass(frozen=True)
class Credentials:
    authorization: str | None
    cookies: Mapping[str, str]
    method: str = "GET"
    csrf: str | None = None  # the X-CSRF-Token header
    secure: bool = False  # the request came over HTTPS (directly, or as a trusted proxy says)


def session_cookie_name(secure: bool) -> str:
    return SECURE_SESSION_COOKIE if secure else SESSION_COOKIE


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    cookie: str


class Authenticator:
    def __init__(self, accounts: Accounts, signer: Signer, shares: ShareLinks, share_key_of: ShareKeyOf,
                 sessions: Sessions, sign_in_limits: Limits = Limits()) -> None:
        self.accounts = accounts
        self._cookies = signer.for_purpose("session")
        self.sessions = sessions
        self.shares = shares
        self._share_key_of = share_key_of
        self.passes = Passes(signer.for_purpose("pass"))
        self.sign_ins = SignInThrottle(sign_in_limits)

    def principal(self, credentials: Credentials, space_id: str | None = None) -> Principal:
        """Who is calling. A bad bearer token is an error (the caller meant to be someone); a stale cookie is not.
        ``space_id``: the space a gateway request is for, whose share cookie and member pass count."""
        who = self._bearer(credentials.authorization) if credentials.authorization else \
            self._session(credentials)
        if space_id is not None:
            token = credentials.cookies.get(cookie_name(space_id))
            member_pass = credentials.cookies.get(pass_cookie_name(space_id, credentials.secure))
            if (token and self.share_opens(token, space_id)) or (member_pass and self.pass_opens(member_pass,
                                                                                                space_id)):
                who = replace(who, shared=who.shared | {space_id})
        return who

    def _bearer(self, header: str) -> Principal:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthError("the Authorization header is not 'Bearer TOKEN'", hint=LOGIN_HINT)
        principal = self.accounts.principal(secret.strip())
        if principal is None:
            raise AuthError("this token is not valid: revoked, mistyped, from another platform, or its user is "
                            "disabled", hint=LOGIN_HINT)
        return principal

    def _session(self, credentials: Credentials) -> Principal:
        live = self.live_session(credentials)
        if live is None:
            return ANONYMOUS
        if credentials.method not in SAFE_METHODS and not secrets.compare_digest(
                str(credentials.csrf or ""), live.csrf):
            # a page elsewhere can make the browser send the cookie, never read it: writes must show the token
            raise AuthError("a write from a signed-in browser needs its X-CSRF-Token header",
                            hint="reload the page; scripts use a token instead of the cookie")
        who = self.accounts.active(live.user)
        if who is None:  # the user was removed or disabled since: their sessions end
            self.sessions.end_all(live.user)
            return ANONYMOUS
        return replace(who, via="session", session_id=live.id)

    def live_session(self, credentials: Credentials) -> Live | None:
        """The session the request's cookie names, while it lasts (not ended, not expired)."""
        secret = self._session_secret(credentials)
        return self.sessions.live(secret) if secret else None

    def _session_secret(self, credentials: Credentials) -> str | None:
        value = credentials.cookies.get(session_cookie_name(credentials.secure))
        payload = self._cookies.verify(value) if value else None
        secret = payload.get("i") if payload else None
        return secret if isinstance(secret, str) and secret else None

    def start_session(self, user: str, user_agent: str = "", address: str = "",
                      token_id: int | None = None) -> Session:
        secret, csrf = self.sessions.start(user, user_agent, address, token_id)
        return Session(user, csrf, self._cookies.sign({"i": secret}))

    def end_session(self, credentials: Credentials) -> bool:
        """Sign-out: the cookie's session ends on the server, so a copy of the cookie opens nothing either."""
        secret = self._session_secret(credentials)
        return self.sessions.end(secret) if secret else False

    def session_csrf(self, credentials: Credentials) -> str | None:
        live = self.live_session(credentials)
        return live.csrf if live else None

    def issue_pass(self, user: str, space_id: str) -> str | None:
        """A pass for the app frame's link (None: no such space)."""
        key = self._share_key_of(space_id)
        return None if key is None else self.passes.issue(space_id, user, key)

    def exchange_pass(self, token: str, space_id: str) -> tuple[str | None, str]:
        """A link's pass → the app-origin cookie's (None and why not, for a bad, expired or revoked one, or a
        member who may no longer see the space)."""
        key = self._share_key_of(space_id)
        if key is None:
            return None, "this pass is for a space that no longer exists"
        check = self.passes.check(token, space_id, key, "link")
        if check.user is None:
            return None, check.problem
        if not self.sessions.use_once(f"pass:{check.nonce}", check.expires):  # a copy of a link used already
            return None, "this pass was used already: open the app from its page again"
        if not self._member_sees(check.user, space_id):
            return None, f"{check.user} may no longer open this space"
        return self.passes.issue(space_id, check.user, key, "cookie"), ""

    def pass_opens(self, token: str, space_id: str) -> bool:
        key = self._share_key_of(space_id)
        user = self.passes.check(token, space_id, key, "cookie").user if key is not None else None
        return user is not None and self._member_sees(user, space_id)

    def _member_sees(self, user: str, space_id: str) -> bool:
        who = self.accounts.active(user)  # None: removed or disabled since
        return who is not None and rules.may_see(replace(who, via="pass"), space_id, private=True)

    def share_opens(self, token: str, space_id: str) -> bool:
        key = self._share_key_of(space_id)
        return key is not None and self.shares.check(token, space_id, key).space_id == space_id
