"""Git LFS's HTTP side: ``POST info/lfs/objects/batch``, the basic transfer's ``PUT``/``GET
info/lfs/objects/OID`` it points at, and ``POST info/lfs/locks/verify`` (no locks here: git-lfs asks before every
push). The same credentials and rules as git's own requests (hub/git.py ``refusal``): a batch download reads, an
upload writes."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from spaces_runtime.auth.principal import Principal
from spaces_runtime.errors import UploadError
from spaces_runtime.hub.git import REALM, GitRequest, Refusal, refusal
from spaces_runtime.hub.lfs import MEDIA_TYPE, OID, StorageQuotaError, batch_answer

if TYPE_CHECKING:
    from spaces_runtime.hub.lfs import LfsObjects
    from spaces_runtime.store import SpaceRecord

MAX_BATCH = 4 * 1024 * 1024
FILE_CHUNK = 1024 * 1024


async def serve_lfs(lfs: LfsObjects, request: GitRequest, principal: Principal, record: SpaceRecord | None,
                    scope: Scope, receive: Receive, send: Send) -> None:
    method, rest = scope["method"], request.rest
    private = record.private if record is not None else None

    def refused(writes: bool) -> Refusal | None:
        return refusal(principal, request.space_id, private, writes)

    if method == "POST" and rest == "objects/batch":
        await _batch(lfs, request, refused, scope, receive, send)
    elif method == "POST" and rest == "locks/verify":
        await _json(send, *_refused_or(refused(True), 200, {"ours": [], "theirs": []}))
    elif rest.startswith("objects/") and OID.fullmatch(oid := rest.removeprefix("objects/")):
        problem = refused(method == "PUT")
        if problem is not None:
            await _json(send, *_refused_or(problem, 0, {}))
        elif method == "PUT":
            await _upload(lfs, request.space_id, oid, receive, send)
        elif method in ("GET", "HEAD"):
            await _download(lfs, request.space_id, oid, send, head=method == "HEAD")
        else:
            await _json(send, 405, {"message": f"{method} is not part of the LFS basic transfer"})
    else:
        await _json(send, 404, {"message": f"no LFS endpoint {rest} (batch, objects/OID, locks/verify)"})


async def _batch(lfs: LfsObjects, request: GitRequest, refused: Any, scope: Scope, receive: Receive,
                 send: Send) -> None:
    try:
        body = json.loads(await _read(receive, MAX_BATCH))
        operation, objects = str(body["operation"]), list(body.get("objects", []))
    except (ValueError, KeyError, TypeError):
        await _json(send, 422, {"message": "the batch request is not JSON {operation, objects}"})
        return
    if operation not in ("upload", "download"):
        await _json(send, 422, {"message": f"operation {operation!r} is not upload or download"})
        return
    problem = refused(operation == "upload")
    if problem is not None:
        await _json(send, *_refused_or(problem, 0, {}))
        return
    headers = Headers(scope=scope)
    base = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}/spaces/{request.space_id}.git/info/lfs"
    auth = {"Authorization": headers["authorization"]} if "authorization" in headers else {}
    held = lfs.held(request.space_id, [str(o.get("oid", "")) for o in objects if isinstance(o, dict)])
    if operation == "upload":
        lfs.touch(request.space_id, held)
    quota = lfs.quota_of(request.space_id)
    answer = batch_answer(operation, [o for o in objects if isinstance(o, dict)], held,
                          lambda oid: f"{base}/objects/{oid}", auth, lfs.max_size,
                          lambda adding: quota.refusal(request.space_id, adding))
    await _json(send, 200, answer)


async def _upload(lfs: LfsObjects, space_id: str, oid: str, receive: Receive, send: Send) -> None:
    fd, scratch = lfs.open_scratch()
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise UploadError("the upload was cut off")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > lfs.max_size:
                    raise lfs.too_large()
                digest.update(chunk)
                out.write(chunk)
                if not message.get("more_body", False):
                    break
        lfs.keep(space_id, oid, scratch, digest.hexdigest(), size)
    except (UploadError, StorageQuotaError) as exc:
        scratch.unlink(missing_ok=True)
        await _json(send, exc.http_status, {"message": str(exc)})
        return
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    await _json(send, 200, {"oid": oid, "size": size})


async def _download(lfs: LfsObjects, space_id: str, oid: str, send: Send, head: bool) -> None:
    path = lfs.path(oid)
    if not lfs.held(space_id, [oid]):
        await _json(send, 404, {"message": f"{space_id} has no LFS object {oid}"})
        return
    size = path.stat().st_size
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]})
    with path.open("rb") as body:
        while not head and (chunk := body.read(FILE_CHUNK)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def refuse_json(send: Send, problem: Refusal) -> None:
    await _json(send, *_refused_or(problem, 0, {}))


def _refused_or(problem: Refusal | None, status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], bool]:
    if problem is None:
        return status, body, False
    return problem.status, {"message": problem.message}, problem.asks_for_credentials


async def _json(send: Send, status: int, body: dict[str, Any], challenge: bool = False) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(data)).encode())]
    if challenge:  # git-lfs reads LFS-Authenticate first, then WWW-Authenticate
        headers += [(b"lfs-authenticate", REALM.encode()), (b"www-authenticate", REALM.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _read(receive: Receive, limit: int) -> bytes:
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
