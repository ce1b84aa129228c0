"""Member passes: how a signed-in member's browser opens a private app on the app's own origin.

Each app is served on an origin of its own (``owner-name.host``), where the platform's session cookie never goes:
an app's script must not act as its visitor on the platform. So the platform's app page puts a pass in the app
frame's link: signed, naming one space and one member, good for PASS_LINK_S. The gateway exchanges it, once on the
app's origin, for a cookie of that host only (a pass of the other kind, good for PASS_COOKIE_S) and the address
without it. A link-kind pass never works as a cookie and a cookie-kind pass never works in a link, so a link seen
later (a log, a screenshot) opens nothing; a link-kind pass carries a nonce and is exchanged once only (the
Authenticator records it), so a link copied from the frame before it was used is refused too. Every request
re-checks that the member may still see the space, and both kinds are signed with the space's share key too, so
``spaces share --revoke`` ends them with the links. Over HTTPS the cookie's name has the ``__Host-`` prefix: the
browser then takes it only when Secure, for Path=/ and with no Domain, so no sibling host can plant one."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from spaces_runtime.auth.signing import Signer

PASS_PARAM = "__pass"
PASS_LINK_S = 120  # the app page's frame asks for its link at once; a reload of the page makes a new one
PASS_COOKIE_S = 12 * 3600
Kind = Literal["link", "cookie"]


def pass_cookie_name(space_id: str, secure: bool = False) -> str:
    return ("__Host-" if secure else "") + "spaces_pass_" + re.sub(r"[^A-Za-z0-9]", "_", space_id)


@dataclass(frozen=True)
class PassCheck:
    user: str | None  # the member the pass is for, when it is good
    problem: str = ""
    nonce: str = ""  # a link-kind pass's, which may be used once
    expires: int = 0


class Passes:
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def issue(self, space_id: str, user: str, share_key: str, kind: Kind = "link", now: float | None = None) -> str:
        life = PASS_LINK_S if kind == "link" else PASS_COOKIE_S
        expires = int((now if now is not None else time.time()) + life)
        payload: dict[str, object] = {"s": space_id, "u": user, "k": kind, "e": expires}
        if kind == "link":
            payload["n"] = secrets.token_urlsafe(16)
        return self._signer.sign(payload, extra_key=share_key)

    def check(self, token: str, space_id: str, share_key: str, kind: Kind, now: float | None = None) -> PassCheck:
        payload = self._signer.verify(token, extra_key=share_key)
        if payload is None or payload.get("s") != space_id or payload.get("k") != kind:
            return PassCheck(None, "this pass is not valid: it was changed, revoked, or is for another space")
        expires, user = payload.get("e"), payload.get("u")
        if not isinstance(expires, int) or expires < (now if now is not None else time.time()):
            return PassCheck(None, "this pass has expired: reload the app's page")
        if not isinstance(user, str) or not user:
            return PassCheck(None, "this pass names nobody")
        nonce = payload.get("n")
        if kind == "link" and (not isinstance(nonce, str) or not nonce):
            return PassCheck(None, "this pass is not valid: it was changed, revoked, or is for another space")
        return PassCheck(user, nonce=str(nonce or ""), expires=expires)
