"""A space's files over the Hub API: the tree, file downloads, and commits (``upload_file``, ``upload_folder``,
``create_commit``), each of which becomes a new code version of the space and deploys.

    POST /api/spaces/{id}/preupload/{rev}      which files to send and how: all inline ("regular")
    POST /api/spaces/{id}/commit/{rev}         NDJSON (hub/ndjson.py) → a new version from the current one + ops
    GET  /api/spaces/{id}/tree/{rev}[/{path}]  list_repo_tree / list_repo_files
    POST /api/spaces/{id}/paths-info/{rev}     get_paths_info (form: paths=..., expand=...)
    GET  /api/spaces/{id}/revision/{rev}       space_info(revision=...) (snapshot_download resolves main here)
    GET  /api/spaces/{id}/refs                 list_repo_refs: main
    GET|HEAD /spaces/{id}/resolve/{rev}/{path} hf_hub_download / snapshot_download

Revisions are ``main`` and the commit ids of the space's git repository (hub/tree.py reads it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from spaces_runtime.appfiles import UploadLimits
from spaces_runtime.errors import ConflictError, InvalidNameError, UploadError, UploadTooLargeError
from spaces_runtime.hub import shapes, tree
from spaces_runtime.hub.answers import HubDep, space_info
from spaces_runtime.hub.apierrors import NotSupportedError, RevisionNotFoundError
from spaces_runtime.hub.ndjson import LFS_HINT, Header, clean_path, ignored, parse_line
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, changeable, seen

router = APIRouter(tags=["hub"])
PR_HINT = "commit to main: this platform has no pull requests or branches (a commit to main deploys)"
LINE_CHUNK = 64 * 1024


def _no_pull_requests(request: Request) -> None:
    if request.query_params.get("create_pr") in ("1", "true", "True"):
        raise NotSupportedError("pull requests are not served by spaces-runtime", hint=PR_HINT)


@router.post("/api/spaces/{owner}/{name}/preupload/{revision}")
async def preupload(owner: str, name: str, revision: str, request: Request, p: PlatformDep, who: PrincipalDep,
                    parts: HubDep) -> dict[str, Any]:
    record = changeable(p, who, make_space_id(owner, name))
    _no_pull_requests(request)
    current = parts.files.tree(record, revision)
    try:
        listed = json.loads(await request.body()).get("files")
    except (ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list) or not all(isinstance(f, dict) for f in listed):
        raise InvalidNameError("the body must be {'files': [{'path', 'size', 'sample'}, ...]}")
    limit = p.pipeline.limits.max_upload_bytes
    for item in listed:
        item["path"] = clean_path(item.get("path"))
        if int(item.get("size") or 0) > limit:
            raise UploadTooLargeError(f"{item['path']} is larger than the upload limit of {limit // 2**20} MiB",
                                      hint=LFS_HINT)
    oids = {path: blob.oid for path, blob in current.blobs.items()}
    return shapes.preupload_answer(listed, oids, [f["path"] for f in listed if ignored(f["path"])])


@router.post("/api/spaces/{owner}/{name}/commit/{revision}")
async def commit(owner: str, name: str, revision: str, request: Request, p: PlatformDep, who: PrincipalDep,
                 parts: HubDep) -> dict[str, Any]:
    """A new commit on main: main's files with the operations applied, deployed like a push (the version that
    serves keeps serving until the new one runs). One commit at a time per space."""
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    _no_pull_requests(request)
    tree.require_git(p)
    if revision not in tree.MAIN_NAMES:
        raise RevisionNotFoundError(f"{space_id} has no branch {revision!r}", hint=PR_HINT)
    async with parts.commit_locks[space_id], tree.Scratch(p) as scratch:
        head = parts.files.head(p.store.get(space_id))
        await tree.check_out(p, space_id, head, scratch.tree)
        header = await _apply(request.stream(), scratch.tree, head, p.pipeline.limits)
        message = "\n\n".join(part for part in (header.summary, header.description) if part)
        version, sha = await tree.deploy_tree(p, space_id, scratch, who.name, message)
    p.accounts.audit(who, "deploy", space_id, f"version {version}: {header.summary}"[:300])
    return {"success": True, "commitOid": sha, "commitUrl": f"{request.base_url}spaces/{space_id}/commit/{sha}",
            "pullRequestUrl": None}


async def _apply(body: AsyncIterator[bytes], folder: Path, head: str | None, limits: UploadLimits) -> Header:
    header: Header | None = None
    async for line in _lines(body, limits.max_upload_bytes * 4 // 3 + 2**20):
        item = parse_line(line)
        if item is None:
            continue
        if isinstance(item, Header):
            if item.parent and item.parent != head:
                raise ConflictError(f"the space changed since {item.parent}: main is at {head} now",
                                    hint="fetch it again and commit on top of it")
            header = item
        elif header is None:
            raise UploadError("the commit's first line must be its header", hint="use huggingface_hub")
        else:
            await asyncio.to_thread(tree.apply, folder, item)
    if header is None:
        raise UploadError("the commit is empty: no header line", hint="use huggingface_hub's create_commit")
    return header


async def _lines(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """NDJSON lines of a streamed body (one line may be a whole file, base64), refused past ``limit`` bytes."""
    buffer, received, scanned = bytearray(), 0, 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise UploadTooLargeError(f"the commit is larger than the limit of {limit // 2**20} MiB", hint=LFS_HINT)
        buffer += chunk
        while (end := buffer.find(b"\n", scanned)) >= 0:
            yield bytes(buffer[:end])
            del buffer[: end + 1]
            scanned = 0
        scanned = len(buffer)
    if buffer:
        yield bytes(buffer)


@router.get("/api/spaces/{owner}/{name}/tree/{revision}")
@router.get("/api/spaces/{owner}/{name}/tree/{revision}/{path:path}")
def list_tree(owner: str, name: str, revision: str, p: PlatformDep, who: PrincipalDep, parts: HubDep,
              path: str = "", recursive: bool = False) -> list[dict[str, object]]:
    record = seen(p, who, make_space_id(owner, name))
    return parts.files.tree(record, revision).entries(path, recursive)


@router.post("/api/spaces/{owner}/{name}/paths-info/{revision}")
async def paths_info(owner: str, name: str, revision: str, request: Request, p: PlatformDep, who: PrincipalDep,
                     parts: HubDep) -> list[dict[str, object]]:
    record = seen(p, who, make_space_id(owner, name))
    every = {str(e["path"]): e for e in parts.files.tree(record, revision).entries(recursive=True)}
    wanted = parse_qs((await request.body()).decode("utf-8", "replace")).get("paths", [])
    return [every[path.strip("/")] for path in wanted if path.strip("/") in every]


@router.get("/api/spaces/{owner}/{name}/revision/{revision}")
def revision_info(owner: str, name: str, revision: str, request: Request, p: PlatformDep, who: PrincipalDep,
                  parts: HubDep) -> dict[str, Any]:
    record = seen(p, who, make_space_id(owner, name))
    files = parts.files.tree(record, revision)
    answer = space_info(p, parts, request, record)
    return {**answer, "sha": files.commit or shapes.EMPTY_TREE_SHA,
            "siblings": [blob.sibling() for blob in files.blobs.values()]}


@router.get("/api/spaces/{owner}/{name}/refs")
def refs(owner: str, name: str, p: PlatformDep, who: PrincipalDep, parts: HubDep) -> dict[str, Any]:
    head = parts.files.head(seen(p, who, make_space_id(owner, name)))
    branches = [{"name": "main", "ref": "refs/heads/main", "targetCommit": head}] if head else []
    return {"branches": branches, "converts": [], "tags": [], "pullRequests": []}


@router.api_route("/spaces/{owner}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
def resolve(owner: str, name: str, revision: str, path: str, request: Request, p: PlatformDep,
            who: PrincipalDep, parts: HubDep) -> Response:
    """A file of the space as ``hf_hub_download`` fetches it: the commit in X-Repo-Commit, the git blob id as the
    ETag (the client's cache keys on both), streamed from git; a file in LFS is its object (sha256 as its ETag, as
    on the Hub) when the space holds it."""
    record = seen(p, who, make_space_id(owner, name))
    files = parts.files.tree(record, revision)
    blob = files.blob(path)
    headers = {"X-Repo-Commit": str(files.commit), "ETag": f'"{blob.oid}"'}
    lfs = p.pipeline.commits.lfs
    if blob.lfs is not None and lfs.held(record.id, [blob.lfs.oid]):
        headers["ETag"] = f'"{blob.lfs.oid}"'
        return FileResponse(lfs.path(blob.lfs.oid), headers=headers, media_type="application/octet-stream")
    headers |= {"Content-Length": str(blob.size), "Accept-Ranges": "none"}
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/octet-stream")
    return StreamingResponse(parts.files.stream(record, blob), headers=headers,
                             media_type="application/octet-stream")
