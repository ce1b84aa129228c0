"""The app page's Files tab and Duplicate page, as on Hugging Face: the space's files at the version that serves
(its folders, each text file highlighted and escaped by Pygments, a binary or LFS file as its size and a download
link), and "Duplicate this Space" (a target namespace the viewer may write, a name, the secrets the copy needs).

Both read through the Hub's own parts: the tree is hub/tree.py's, a download is hub/api_files.py's ``resolve``,
and the page's Duplicate form posts to the Hub's ``POST /api/spaces/{owner}/{name}/duplicate`` (hub/api_repos.py:
code and variables copied, secret values never). Privacy is the gallery's: a private space is a 404 to others."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, guess_lexer_for_filename
from pygments.util import ClassNotFound

from spaces_runtime.auth import rules
from spaces_runtime.auth.principal import Principal
from spaces_runtime.hub.answers import HubParts
from spaces_runtime.hub.apierrors import EntryNotFoundError, RevisionNotFoundError
from spaces_runtime.hub.tree import Blob, Tree
from spaces_runtime.server.gallery import find_record, missing, page, viewer
from spaces_runtime.server.views import space_view
from spaces_runtime.store import SpaceRecord
from spaces_runtime.wiring.platform import Platform

router = APIRouter(include_in_schema=False)
MAX_SHOWN_BYTES = 512 * 1024  # larger files are offered as a download only
FORMATTER = HtmlFormatter(linenos="table", cssclass="highlight", wrapcode=True)


# --- pure decisions ---------------------------------------------------------------------------------------
def crumbs(path: str) -> list[tuple[str, str]]:
    """('name', 'path up to it') for each folder of ``path``."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def as_text(data: bytes) -> str | None:
    """The file as text, or None for a binary one (a NUL byte, or not UTF-8)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def highlighted(path: str, text: str) -> str:
    """HTML of the file: every character of it escaped by Pygments, colours by its lexer for the file name."""
    try:
        lexer = guess_lexer_for_filename(path, text)
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(text, lexer, FORMATTER)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("kB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def writable_namespaces(who: Principal, orgs: list[str]) -> list[str]:
    """Where ``who`` may put a copy: their own namespace first, then the organizations they may write."""
    names = [who.name or "", *sorted(set(orgs) | set(who.orgs))]
    return [n for n in dict.fromkeys(names) if n and rules.may_write(who, n)]


# --- reading the tree ---------------------------------------------------------------------------------------
def serving_tree(request: Request, record: SpaceRecord, revision: str) -> Tree:
    """``main`` is the version that serves (a push still building shows the files that answer); a commit id is
    that commit."""
    p: Platform = request.app.state.platform
    parts: HubParts = request.app.state.hub
    if revision == "main":
        revision = p.pipeline.commits.running_commit(record.id) or "main"
    return parts.files.tree(record, revision)


def download_link(record: SpaceRecord, tree: Tree, path: str) -> str:
    return f"/spaces/{record.id}/resolve/{tree.commit or 'main'}/{quote(path)}"


async def read_blob(request: Request, record: SpaceRecord, blob: Blob) -> bytes:
    parts: HubParts = request.app.state.hub
    chunks = [chunk async for chunk in parts.files.stream(record, blob)]
    return b"".join(chunks)


def files_page(request: Request, who: Principal, record: SpaceRecord, tree: Tree, path: str,
               status_code: int = 200, **context: Any) -> HTMLResponse:
    p: Platform = request.app.state.platform
    return page(request, "files.html", who, status_code, s=space_view(record, p.settings.public_link_host),
                commit=tree.commit, path=path, crumbs=crumbs(path), human_size=human_size,
                storage=p.pipeline.commits.lfs.quota_of(record.id), **context)


# --- routes ---------------------------------------------------------------------------------------------------
@router.get("/{owner}/{name}/tree/{revision}", response_class=HTMLResponse)
@router.get("/{owner}/{name}/tree/{revision}/{path:path}", response_class=HTMLResponse)
def tree_page(owner: str, name: str, revision: str, request: Request, path: str = "") -> HTMLResponse:
    who = viewer(request)
    record = find_record(request, owner, name, who)
    if record is None:
        return missing(request, f"{owner}/{name}", who)
    try:
        tree = serving_tree(request, record, revision)
        entries = tree.entries(path)
    except (EntryNotFoundError, RevisionNotFoundError) as exc:
        return page(request, "notice.html", who, 404, heading="No such folder", message=exc.message)
    folders = [e for e in entries if e["type"] == "directory"]
    files = [{**e, "link": download_link(record, tree, str(e["path"]))} for e in entries if e["type"] == "file"]
    return files_page(request, who, record, tree, path.strip("/"), folders=folders, files=files,
                      revision=revision, view="tree")


@router.get("/{owner}/{name}/blob/{revision}/{path:path}", response_class=HTMLResponse)
async def blob_page(owner: str, name: str, revision: str, path: str, request: Request) -> HTMLResponse:
    who = viewer(request)
    record = find_record(request, owner, name, who)
    if record is None:
        return missing(request, f"{owner}/{name}", who)
    try:
        tree = serving_tree(request, record, revision)
        blob = tree.blob(path)
    except (EntryNotFoundError, RevisionNotFoundError) as exc:
        return page(request, "notice.html", who, 404, heading="No such file", message=exc.message)
    text = None
    if blob.lfs is None and blob.size <= MAX_SHOWN_BYTES:
        text = as_text(await read_blob(request, record, blob))
    return files_page(request, who, record, tree, blob.path, revision=revision, view="blob", blob=blob,
                      lfs=blob.lfs is not None, size=blob.file_size, link=download_link(record, tree, blob.path),
                      code=highlighted(blob.path, text) if text is not None else None,
                      too_large=blob.lfs is None and blob.size > MAX_SHOWN_BYTES,
                      styles=FORMATTER.get_style_defs(".highlight"))


@router.get("/{owner}/{name}/duplicate", response_class=HTMLResponse)
def duplicate_page(owner: str, name: str, request: Request) -> Response:
    """For whoever may see the space and is signed in; others: 404 (private) or sign in first."""
    p: Platform = request.app.state.platform
    who = viewer(request)
    record = find_record(request, owner, name, who)
    if record is None:
        return missing(request, f"{owner}/{name}", who)
    if who.anonymous:
        return RedirectResponse("/login?" + urlencode({"next": request.url.path}), 303)
    targets = writable_namespaces(who, list(p.accounts.orgs()) if who.admin else [])
    if not targets:
        return page(request, "notice.html", who, 403, heading=f"You cannot duplicate {record.id}",
                    message="Your token is read-only: sign in with a write token or a password.")
    return page(request, "duplicate.html", who, s=space_view(record, p.settings.public_link_host),
                targets=targets, secrets=p.secrets.secrets(record.id), variables=p.secrets.variables(record.id))
