"""Share links: a private space opened by anyone who holds the link, until it expires (pure apart from the key).

A link carries the space, its expiry and the space's share key generation, signed with the platform's key and
the space's own share key; rotating that key (``spaces share --revoke``) ends every link at once."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from spaces_runtime.auth.signing import Signer
from spaces_runtime.errors import InvalidNameError

SHARE_PARAM = "__share"  # the query parameter a link carries; the gateway turns it into a cookie
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_S = 365 * 86400


def cookie_name(space_id: str) -> str:
    """One cookie per space, so a link to one app never opens another."""
    return "spaces_share_" + re.sub(r"[^A-Za-z0-9]", "_", space_id)


def parse_duration(text: str) -> float:
    """'24h', '30m', '7d', '90s', '2w' → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        raise InvalidNameError(f"expiry {text!r} is not a duration", hint="write it like 24h, 30m, 7d or 2w")
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if not 0 < seconds <= MAX_S:
        raise InvalidNameError(f"expiry {text!r} is not between a second and a year", hint="e.g. --expires 24h")
    return seconds


@dataclass(frozen=True)
class Verdict:
    space_id: str | None  # the space the link opens, when it is good
    problem: str = ""  # why not, for the page the visitor sees


class ShareLinks:
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def make(self, space_id: str, share_key: str, expires_in_s: float, now: float | None = None) -> str:
        expires = int((now or time.time()) + expires_in_s)
        return self._signer.sign({"s": space_id, "e": expires}, extra_key=share_key)

    def check(self, token: str, space_id: str, share_key: str, now: float | None = None) -> Verdict:
        payload = self._signer.verify(token, extra_key=share_key)
        if payload is None or payload.get("s") != space_id:
            return Verdict(None, "this share link is not valid: it was changed, revoked, or is for another space")
        expires = payload.get("e")
        if not isinstance(expires, int) or expires < (now or time.time()):
            return Verdict(None, "this share link has expired")
        return Verdict(space_id)
