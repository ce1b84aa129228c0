"""The Hub's commit payload (``POST /api/spaces/{id}/commit/{revision}``, NDJSON): one ``header`` line, then one
line per operation, as huggingface_hub's ``_commit_api._prepare_commit_payload`` writes them (pure).

    {"key": "header", "value": {"summary": ..., "description": ..., "parentCommit"?: ...}}
    {"key": "file", "value": {"path": ..., "content": BASE64, "encoding": "base64"}}
    {"key": "deletedFile" | "deletedFolder", "value": {"path": ...}}
    {"key": "lfsFile", "value": {"path": ..., "oid": SHA256, "size": ...}}   → 501: files go inline here
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from spaces_runtime.appfiles import MAX_DEPTH, is_app_code
from spaces_runtime.errors import UploadError
from spaces_runtime.hub.apierrors import NotSupportedError

LFS_HINT = ("this platform's Hub API takes every file inline (preupload answers uploadMode 'regular'); push large "
            "files with git instead: git push to http://HOST/spaces/OWNER/NAME")


@dataclass(frozen=True)
class Header:
    summary: str
    description: str = ""
    parent: str | None = None


@dataclass(frozen=True)
class AddFile:
    path: str
    content: bytes


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Operation = AddFile | DeleteFile | DeleteFolder


def parse_line(line: bytes) -> Header | Operation | None:
    """One NDJSON line; None for a blank one."""
    if not line.strip():
        return None
    try:
        item = json.loads(line)
    except ValueError:
        raise UploadError("a commit line is not JSON", hint="send the NDJSON huggingface_hub's create_commit writes")\
            from None
    if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
        raise UploadError("a commit line is not {'key': ..., 'value': {...}}", hint="use huggingface_hub")
    key, value = item.get("key"), item["value"]
    if key == "header":
        parent = value.get("parentCommit")
        return Header(str(value.get("summary") or ""), str(value.get("description") or ""),
                      str(parent) if parent else None)
    if key == "lfsFile":
        raise NotSupportedError(f"{value.get('path')}: LFS uploads are not served by the Hub API here",
                                hint=LFS_HINT)
    path = clean_path(value.get("path"))
    if key == "file":
        return AddFile(path, _content(value, path))
    if key == "deletedFile":
        return DeleteFile(path)
    if key == "deletedFolder":
        return DeleteFolder(path.rstrip("/"))
    raise UploadError(f"unknown commit operation {key!r}", hint="file, deletedFile, deletedFolder")


def _content(value: dict[str, object], path: str) -> bytes:
    content, encoding = value.get("content"), value.get("encoding", "base64")
    if not isinstance(content, str):
        raise UploadError(f"{path}: the file has no content", hint="send its bytes base64-encoded")
    if encoding == "utf-8":
        return content.encode()
    if encoding != "base64":
        raise UploadError(f"{path}: encoding {encoding!r} is not base64 or utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except binascii.Error:
        raise UploadError(f"{path}: the content is not valid base64") from None


def clean_path(path: object) -> str:
    """A path in the repository: relative, forward slashes, no '..', not too deep."""
    if not isinstance(path, str) or not path.strip("/") or "\0" in path or "\\" in path:
        raise UploadError(f"path {path!r} is not a file path in the space", hint="e.g. app.py or src/model.py")
    parts = PurePosixPath(path.strip("/")).parts
    if path.startswith("/") or ".." in parts or "." in parts or len(parts) > MAX_DEPTH:
        raise UploadError(f"path {path!r} leaves the space's folder or is too deep",
                          hint="give a path relative to the space's root, without '..'")
    return "/".join(parts)


def ignored(path: str) -> bool:
    """Never app code (a virtualenv, caches, .git): the platform would not build or serve it."""
    return not is_app_code(Path(path))
