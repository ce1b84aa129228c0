"""Which app a request is for, and the path to forward (pure).

Two link forms reach an app:
- path form: ``/spaces/{owner}/{name}/…`` on any host;
- host form: ``{owner}-{name}.{public_host}`` (``alice-demo.localhost:7000``), everything on that host.

The host form is ambiguous when the owner holds a '-' (``a-b-c`` is ``a/b-c`` or ``a-b/c``). The rule: every
split at a '-' is a candidate, leftmost split first; the gateway uses the first candidate that names a space that
exists. So ``alice-my-app`` means ``alice/my-app`` unless no such space exists and ``alice-my/app`` does.
Ports are ignored when comparing hosts, so ``public_host`` may be given with or without one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"[a-z0-9][a-z0-9\-_.]{0,95}")
_PATH = re.compile(r"/spaces/(?P<owner>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?", re.DOTALL)


@dataclass(frozen=True)
class Route:
    owner: str
    name: str
    rest: str  # the path after /spaces/{owner}/{name}, starting with "/"
    via_host: bool  # reached through the host form
    candidates: tuple[tuple[str, str], ...] = ()  # host form: every (owner, name) reading, preferred first
    redirect: str | None = None  # send the browser here instead (the prefix without its trailing slash)

    @property
    def prefix(self) -> str:
        return f"/spaces/{self.owner}/{self.name}"

    def with_app(self, owner: str, name: str) -> Route:
        """The same request read as being for owner/name (one of the host form's candidates)."""
        return Route(owner, name, self.rest, self.via_host, self.candidates, self.redirect)

    def upstream_path(self, forward_prefix: bool) -> str:
        """The path the app gets: with /spaces/o/n in front when the app serves under it."""
        return self.prefix + self.rest if forward_prefix else self.rest


def resolve(host: str, path: str, public_host: str) -> Route | None:
    """The app a request for ``host`` + ``path`` is for, or None when it is the platform's own."""
    sub = _subdomain(host, public_host)
    if sub is not None:
        candidates = split_subdomain(sub)
        if candidates:
            owner, name = candidates[0]
            return Route(owner, name, _strip_prefix(path, owner, name, candidates), True, candidates)
    match = _PATH.fullmatch(path)
    if match is None or not _valid(match["owner"], match["name"]):
        return None
    owner, name, rest = match["owner"], match["name"], match["rest"]
    if rest is None:
        return Route(owner, name, "/", False, redirect=f"/spaces/{owner}/{name}/")
    return Route(owner, name, rest, False)


def split_subdomain(sub: str) -> tuple[tuple[str, str], ...]:
    """Every (owner, name) a host label can mean, leftmost split first."""
    found = []
    for i, char in enumerate(sub):
        if char == "-" and _valid(sub[:i], sub[i + 1:]):
            found.append((sub[:i], sub[i + 1:]))
    return tuple(found)


def _strip_prefix(path: str, owner: str, name: str, candidates: tuple[tuple[str, str], ...]) -> str:
    """On its own host an app may still be asked for /spaces/o/n/… (Gradio puts that prefix in its links)."""
    for o, n in candidates:
        prefix = f"/spaces/{o}/{n}"
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix):] or "/"
    return path or "/"


def _subdomain(host: str, public_host: str) -> str | None:
    hostname, public = _hostname(host), _hostname(public_host)
    if not public or not hostname.endswith("." + public):
        return None
    return hostname[: -len(public) - 1] or None


def _hostname(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):  # [::1]:7000
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _valid(owner: str, name: str) -> bool:
    return bool(NAME.fullmatch(owner) and NAME.fullmatch(name))
