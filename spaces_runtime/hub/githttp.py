"""Git's smart HTTP on a space's link, answered by git itself: ``git http-backend`` as a CGI child per request,
its request and response bodies streamed both ways (a push's pack is never held in memory; a fetch's pack starts
flowing at once; hook output reaches the pusher as it is printed).

Mounted in the platform's app at ``/spaces/{owner}/{name}``; the gateway hands it only the requests
``hub.git.git_request`` says are git's. Credentials are the platform's tokens: HTTP Basic with the token as the
password (what git's credential helpers store; a 401 names the Basic realm so git asks for one) or a Bearer
header. Git LFS's requests on the same path go to hub/lfshttp.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from spaces_runtime.auth.authenticate import Credentials
from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.errors import AuthError
from spaces_runtime.hub.git import (
    HOOK_TOKEN_HEADER,
    REALM,
    GitRequest,
    Refusal,
    git_request_of,
    parse_updates,
    refusal,
    split_cgi_head,
    token_of,
)
from spaces_runtime.hub.hooks import Push, PushTokens
from spaces_runtime.hub.lfshttp import refuse_json, serve_lfs
from spaces_runtime.hub.pushes import Pushes
from spaces_runtime.hub.repos import git_env
from spaces_runtime.server.views import links

if TYPE_CHECKING:
    from spaces_runtime.wiring.platform import Platform

log = logging.getLogger(__name__)
CHUNK = 64 * 1024
MAX_HOOK_BODY = 1024 * 1024
FORWARDED = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH",
             "content-encoding": "HTTP_CONTENT_ENCODING", "git-protocol": "GIT_PROTOCOL"}


class GitHttp:
    def __init__(self, p: Platform) -> None:
        self.p = p
        self.tokens = PushTokens()
        self.pushes = Pushes(p)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = git_request_of(scope)
        if request is None:
            await answer(send, 404, "not a git request this platform serves")
            return
        if request.kind == "hook":
            await self._hook(request, scope, receive, send)
            return
        principal = self.principal(scope)
        if principal is None:
            bad = Refusal(401, "this token is not valid: revoked, mistyped, or from another platform")
            await (refuse_json(send, bad) if request.kind == "lfs" else refuse(send, bad))
            return
        record = self.p.store.peek(request.space_id)
        if request.kind == "lfs":
            await serve_lfs(self.p.pipeline.commits.lfs, request, principal, record, scope, receive, send)
            return
        refused = refusal(principal, request.space_id, record.private if record else None, request.writes)
        if refused is not None:
            await refuse(send, refused)
            return
        await asyncio.to_thread(self.p.pipeline.commits.ensure_repo, request.space_id)
        env = self._cgi_env(scope, request, principal)
        if not (request.writes and request.kind == "rpc"):
            await run_backend(env, receive, send)
            return
        push = Push(request.space_id, principal, links(request.space_id, self.p.settings.public_link_host)["url"])
        with self.tokens.opened(push) as token:
            env |= {"SPACES_HOOK_URL": self._hook_url(scope, request), "SPACES_HOOK_TOKEN": token}
            await run_backend(env, receive, send)

    def principal(self, scope: Scope) -> Principal | None:
        """Who the request's token is; ANONYMOUS without one; None for a token that is not valid."""
        token = token_of(Headers(scope=scope).get("authorization"))
        if token is None:
            return ANONYMOUS
        if not token:
            return None
        try:
            return self.p.auth.principal(Credentials(authorization=f"Bearer {token}", cookies={}))
        except AuthError:
            return None

    def _cgi_env(self, scope: Scope, request: GitRequest, principal: Principal) -> dict[str, str]:
        headers = Headers(scope=scope)
        client = scope.get("client")
        env = {"GIT_PROJECT_ROOT": str(self.p.pipeline.commits.repos.root), "GIT_HTTP_EXPORT_ALL": "1",
               "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": scope["method"],
               "PATH_INFO": request.path_info, "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
               "REMOTE_ADDR": client[0] if client else "", **({"REMOTE_USER": principal.name} if principal.name
                                                            else {})}
        env |= {variable: headers[name] for name, variable in FORWARDED.items() if name in headers}
        return git_env(env)

    def _hook_url(self, scope: Scope, request: GitRequest) -> str:
        """Where this platform is reached from its own machine: the address the push came in on."""
        host, port = scope.get("server") or (self.p.settings.host, self.p.settings.port)
        host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/spaces/{request.owner}/{request.name}.git/info/spaces-hooks"

    # --- the hooks' callbacks -------------------------------------------------------------------------------------
    async def _hook(self, request: GitRequest, scope: Scope, receive: Receive, send: Send) -> None:
        push = self.tokens.find(Headers(scope=scope).get(HOOK_TOKEN_HEADER), request.space_id)
        if push is None:
            await answer(send, 403, "spaces-runtime: this is not a push under way through the platform")
            return
        try:
            body = json.loads(await read_body(receive, MAX_HOOK_BODY))
            updates = parse_updates([str(line) for line in body.get("updates", [])])
            objects = {str(k): str(v) for k, v in dict(body.get("objects", {})).items()}
        except (ValueError, TypeError, AttributeError):
            await answer(send, 400, "spaces-runtime: the hook's report is not JSON {updates, objects}")
            return
        if request.rest == "pre-receive":
            landed, lines = await self.pushes.check(push, updates, objects)
            await answer(send, 200 if landed else 422, "".join(f"{line}\n" for line in lines))
            return
        await stream_lines(send, self.pushes.deploy(push, updates))


# --- HTTP answers ------------------------------------------------------------------------------------------------
async def answer(send: Send, status: int, text: str, challenge: bool = False) -> None:
    body = (text if not text or text.endswith("\n") else text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if challenge:
        headers.append((b"www-authenticate", REALM.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def refuse(send: Send, refused: Refusal) -> None:
    await answer(send, refused.status, refused.message, challenge=refused.asks_for_credentials)


async def stream_lines(send: Send, lines: AsyncIterator[str]) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]})
    async for line in lines:
        await send({"type": "http.response.body", "body": f"{line}\n".encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def read_body(receive: Receive, limit: int) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValueError("the caller went away")
        body += message.get("body", b"")
        if len(body) > limit:
            raise ValueError("too large")
        if not message.get("more_body", False):
            return body


# --- git http-backend ----------------------------------------------------------------------------------------------
async def run_backend(env: dict[str, str], receive: Receive, send: Send) -> None:
    """Run ``git http-backend`` for one request: the request body into its stdin while its stdout (CGI head,
    then the body) goes out as it comes."""
    child = await asyncio.create_subprocess_exec("git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    feeding = asyncio.create_task(_feed(receive, child.stdin))
    errors = asyncio.create_task(child.stderr.read())
    try:
        await _relay(child.stdout, send, errors)
    finally:
        if child.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(child.wait(), 5)  # the answer is out: it is only tidying up
        if child.returncode is None:
            child.kill()
            await child.wait()
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        stderr = await errors
        if child.returncode:
            log.warning("git http-backend %s exited %s: %s", env.get("PATH_INFO"), child.returncode,
                        stderr.decode(errors="replace").strip()[-2000:])


async def _relay(stdout: asyncio.StreamReader, send: Send, errors: asyncio.Task[bytes]) -> None:
    head = b""
    parsed = None
    while parsed is None:
        chunk = await stdout.read(CHUNK)
        if not chunk:
            detail = (await errors).decode(errors="replace").strip()
            await answer(send, 502, f"git http-backend gave no answer: {detail or 'nothing on its output'}")
            return
        head += chunk
        parsed = split_cgi_head(head)
    status, headers, rest = parsed
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if rest:
        await send({"type": "http.response.body", "body": rest, "more_body": True})
    while chunk := await stdout.read(CHUNK):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _feed(receive: Receive, stdin: asyncio.StreamWriter) -> None:
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            if body:
                stdin.write(body)
                await stdin.drain()
            if not message.get("more_body", False):
                return
    except (BrokenPipeError, ConnectionResetError):
        return  # it answered without reading everything (a refusal): nothing more to give it
    finally:
        with contextlib.suppress(Exception):
            stdin.close()
