"""Git hosting's decisions (pure): which requests are git's, who may make them, the CGI answer's head, the ref
updates a push brings, and the lines the pusher reads as ``remote:``.

A space's git remote is its app link, as on the Hub: ``/spaces/{owner}/{name}`` (``.git`` optional). Git's own
requests on it are told apart by what only git sends: ``info/refs?service=git-upload-pack|git-receive-pack``,
``POST …/git-upload-pack``, ``POST …/git-receive-pack``, and git-lfs's ``info/lfs/…`` beside them; every other
request on the path belongs to the app.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from spaces_runtime.auth.principal import Principal
from spaces_runtime.auth.rules import may_see, may_write
from spaces_runtime.names import NAME_PATTERN

Service = Literal["git-upload-pack", "git-receive-pack"]
SERVICES: tuple[Service, ...] = ("git-upload-pack", "git-receive-pack")
MAIN = "refs/heads/main"
ZERO = "0" * 40
REALM = 'Basic realm="spaces-runtime"'
HOOKS = ("pre-receive", "post-receive")
HOOK_TOKEN_HEADER = "x-spaces-hook-token"
STAGE_MARK = "----->"
INDENT = "       "

_PATH = re.compile(r"/spaces/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|"
                   r"git-receive-pack|info/lfs/.+|info/spaces-hooks/(?:pre|post)-receive)")


@dataclass(frozen=True)
class GitRequest:
    owner: str
    name: str
    kind: Literal["refs", "rpc", "lfs", "hook"]
    service: Service | None = None  # refs and rpc: which git program answers
    rest: str = ""  # lfs: the path after info/lfs/; hook: the hook's name

    @property
    def space_id(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def writes(self) -> bool:
        return self.service == "git-receive-pack"

    @property
    def path_info(self) -> str:
        """The path ``git http-backend`` is given under GIT_PROJECT_ROOT."""
        tail = "info/refs" if self.kind == "refs" else str(self.service)
        return f"/{self.owner}/{self.name}.git/{tail}"


def git_request(method: str, path: str, query: str) -> GitRequest | None:
    """The git request ``method path?query`` is, or None when it is the app's."""
    match = _PATH.fullmatch(path)
    if match is None or not (_valid(match["owner"]) and _valid(match["name"])):
        return None
    owner, name, rest = match["owner"], match["name"], match["rest"]
    if rest == "info/refs":
        service = parse_qs(query).get("service", [""])[0]
        if method in ("GET", "HEAD") and service in SERVICES:
            return GitRequest(owner, name, "refs", service)
        return None  # the dumb protocol, or the app's own info/refs
    if rest in SERVICES:
        return GitRequest(owner, name, "rpc", rest) if method == "POST" else None
    if rest.startswith("info/lfs/"):
        return GitRequest(owner, name, "lfs", rest=rest.removeprefix("info/lfs/"))
    return GitRequest(owner, name, "hook", rest=rest.rsplit("/", 1)[1]) if method == "POST" else None


def git_request_of(scope: Mapping[str, object]) -> GitRequest | None:
    """``git_request`` for an ASGI scope (HTTP only: git never opens a WebSocket)."""
    if scope.get("type") != "http":
        return None
    query = scope.get("query_string", b"")
    return git_request(str(scope.get("method", "GET")), str(scope.get("path", "")),
                       query.decode("latin-1") if isinstance(query, bytes) else "")


def _valid(part: str) -> bool:
    return bool(NAME_PATTERN.fullmatch(part)) and ".." not in part and not part.endswith(".")


# --- who is asking ----------------------------------------------------------------------------------------------
def token_of(authorization: str | None) -> str | None:
    """The token in an Authorization header: Basic's password (git's credential prompt, a token in the remote's
    URL; the user name is ignored, or is the token when the password is empty) or a Bearer token. None: no
    header; "" (no token at all) for a header that holds none, which is a failed sign-in."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() != "basic":
        return ""
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return password or user


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str

    @property
    def asks_for_credentials(self) -> bool:
        return self.status == 401


def refusal(principal: Principal, space_id: str, private: bool | None, writes: bool) -> Refusal | None:
    """Why ``principal`` may not fetch from (or, ``writes``, push to) the space; None when it may. ``private``
    None: there is no such space yet (a push by someone who may write the namespace creates it).

    Anonymous callers are asked to sign in (401, which makes git ask its credential helper) wherever a signed-in
    caller might get further, missing spaces included: a 404 would tell strangers which private names exist.
    A signed-in caller who may not see the space gets 404, one who sees it but may not write gets 403."""
    owner = space_id.split("/", 1)[0]
    hidden = private is None or not may_see(principal, space_id, private)
    if principal.name is None and (writes or hidden):
        what = "pushing to" if writes else "this space is private or missing; fetching"
        return Refusal(401, f"{what} {space_id} needs a token: use it as the password (any user name)")
    if hidden and not (writes and private is None and may_write(principal, owner)):
        return Refusal(404, f"no space named {space_id}")
    if writes and not may_write(principal, owner):
        why = "is read-only" if principal.cap == "read" else f"cannot write into {owner}/"
        return Refusal(403, f"{principal.name}'s token {why}: pushing to {space_id} needs write access")
    return None


# --- git http-backend's answer ----------------------------------------------------------------------------------
def split_cgi_head(buffer: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """A CGI program's output → (status, headers, the body's start); None while the head is incomplete."""
    ends = [(at, len(mark)) for mark in (b"\r\n\r\n", b"\n\n") if (at := buffer.find(mark)) >= 0]
    if not ends:
        return None
    end, gap = min(ends)
    status, headers = 200, []
    for line in buffer[:end].splitlines():
        key, _, value = line.partition(b":")
        key, value = key.strip().lower(), value.strip()
        if key == b"status":
            status = int(value.split(b" ", 1)[0])
        elif key:
            headers.append((key, value))
    return status, headers, buffer[end + gap:]


# --- pushes --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str

    @property
    def deletes(self) -> bool:
        return self.new == ZERO


def parse_updates(lines: list[str]) -> list[RefUpdate]:
    """A hook's standard input: one ``OLD NEW REF`` line per ref the push updates."""
    updates = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            updates.append(RefUpdate(*parts))
    return updates


def main_update(updates: list[RefUpdate]) -> RefUpdate | None:
    """The update of ``main``, the branch that deploys; other branches and tags are only stored."""
    return next((u for u in updates if u.ref == MAIN), None)


def stage_line(stage: str, detail: str = "") -> str:
    return f"{STAGE_MARK} {stage}" + (f"  {detail}" if detail else "")


def log_lines(chunk: str) -> list[str]:
    """Build log text as the pusher reads it, indented under the stage lines (as Heroku and Dokku show it)."""
    return [INDENT + line for line in chunk.splitlines()]


def rejection_lines(space_id: str, commit: str, reason: str) -> list[str]:
    return [f"{STAGE_MARK} push to {space_id} rejected: {commit[:7]} cannot deploy", "",
            *(INDENT + line for line in reason.splitlines()), "",
            f"{INDENT}main is unchanged: fix this, commit, and push again"]
