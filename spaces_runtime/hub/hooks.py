"""The hooks every space's repository runs on a push, and the one-push tokens they call the platform back with.

Why hooks calling back, and not the platform looking after ``git http-backend`` has finished: only a pre-receive
hook can refuse a push before ``main`` moves (git updates the refs itself, atomically, once the hook says yes), and
only what a hook prints reaches the pusher as ``remote:`` lines while the push is still open. Each hook is a small
stdlib-only script; it knows nothing of spaces: it posts its standard input (the ref updates) and, for the
pre-receive check, where the pushed objects wait in quarantine, to the address in SPACES_HOOK_URL, and prints the
answer line by line. The platform puts that address and a token good for this one push in the CGI environment of
the ``git http-backend`` it starts (the hooks inherit it), so no secret is stored in a repository, a hook run
outside a push through the platform (someone pushing to the folder directly) refuses, and the callback knows who
pushed. Exit status: 0 when the platform answered 200 (pre-receive: the push may land).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from spaces_runtime.auth.principal import Principal
from spaces_runtime.hub.git import HOOK_TOKEN_HEADER, HOOKS

HOOK_SCRIPT = '''#!{python} -I
"""spaces-runtime's {hook} hook (installed by the platform, which rewrites it: do not edit). It asks the
platform that serves this push to {verb} it; git shows the pusher every line of the answer as `remote: ...`."""
import json
import os
import sys
import urllib.error
import urllib.request

OBJECTS = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")


def main():
    url, token = os.environ.get("SPACES_HOOK_URL"), os.environ.get("SPACES_HOOK_TOKEN")
    updates = sys.stdin.read().splitlines()
    if not url or not token:
        print("spaces-runtime: push through the platform (git push http://HOST/spaces/OWNER/NAME); "
              "this repository refuses pushes that bypass it")
        return 1
    body = json.dumps({{"updates": updates, "objects": {{k: os.environ[k] for k in OBJECTS if k in os.environ}}}})
    request = urllib.request.Request(url + "/{hook}", data=body.encode(), method="POST", headers={{
        "Content-Type": "application/json", "{header}": token}})
    try:
        answer = urllib.request.urlopen(request)
    except urllib.error.HTTPError as refused:
        answer = refused
    except OSError as exc:
        print("spaces-runtime: the platform did not answer the {hook} hook (%s); nothing was deployed" % exc)
        return 1
    with answer:
        for line in answer:
            sys.stdout.write(line.decode("utf-8", "replace"))
            sys.stdout.flush()
    return 0 if answer.getcode() == 200 else 1


sys.exit(main())
'''
VERBS = {"pre-receive": "check (README front matter, size) before main moves", "post-receive": "deploy"}


def hook_scripts(python: str = sys.executable) -> dict[str, str]:
    """The scripts installed as hooks/NAME in every space's repository, run by this platform's interpreter."""
    return {hook: HOOK_SCRIPT.format(python=python, hook=hook, verb=VERBS[hook], header=HOOK_TOKEN_HEADER)
            for hook in HOOKS}


@dataclass(frozen=True)
class Push:
    space_id: str
    pusher: Principal
    link: str  # where the pusher opens the app (printed once it runs)


class PushTokens:
    """The pushes under way: each one's token, valid while its ``git http-backend`` runs."""

    def __init__(self) -> None:
        self._open: dict[str, Push] = {}

    @contextmanager
    def opened(self, push: Push) -> Iterator[str]:
        token = secrets.token_urlsafe(32)
        self._open[token] = push
        try:
            yield token
        finally:
            self._open.pop(token, None)

    def find(self, token: str | None, space_id: str) -> Push | None:
        push = self._open.get(token or "")
        return push if push is not None and push.space_id == space_id else None
