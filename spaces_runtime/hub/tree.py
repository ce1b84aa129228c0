"""A space's files as the Hub API reads and writes them: the space's git repository (hub/repos.py, every deploy a
commit), read at ``main`` or at a commit id; and new commits made from ``main``'s files plus a commit's
operations, then deployed like a push (the pipeline gets the commit, which is already on ``main``).

Without git on the platform (``SpaceCommits.enabled`` false) a space has no revisions: its tree reads as empty
and commits answer 501.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from spaces_runtime import appfiles
from spaces_runtime.errors import NotFoundError, UploadError
from spaces_runtime.hub import shapes
from spaces_runtime.hub.apierrors import EntryNotFoundError, NotSupportedError, RevisionNotFoundError
from spaces_runtime.hub.commits import SpaceCommits
from spaces_runtime.hub.lfs import MAX_POINTER, Pointer
from spaces_runtime.hub.ndjson import AddFile, DeleteFile, DeleteFolder, Operation, ignored
from spaces_runtime.hub.repos import COMMIT_PATTERN, GitCommandError, run_git
from spaces_runtime.hub.repos import pointers as lfs_pointers
from spaces_runtime.store import SpaceRecord
from spaces_runtime.wiring.platform import Platform

MAIN_NAMES = frozenset({"main", "HEAD", "refs/heads/main"})
NO_GIT = "git is not installed on this platform, so spaces have no revisions to read or commit to"
FILE_MODES = frozenset({"100644", "100755"})  # links (120000) and submodules (160000) are not files to download


@dataclass(frozen=True)
class Blob:
    path: str
    oid: str
    size: int  # of the git blob: a pointer's, for a file in LFS
    lfs: Pointer | None = None

    @property
    def file_size(self) -> int:
        return self.lfs.size if self.lfs else self.size

    def entry(self) -> dict[str, object]:
        """``RepoFile``'s JSON: an LFS file shows its object, as on the Hub."""
        entry = shapes.file_entry(self.path, self.file_size, self.oid)
        if self.lfs:
            entry["lfs"] = {"oid": self.lfs.oid, "size": self.lfs.size, "pointerSize": self.size}
        return entry

    def sibling(self) -> dict[str, object]:
        """``RepoSibling``'s JSON (space_info's siblings)."""
        sibling: dict[str, object] = {"rfilename": self.path, "blobId": self.oid, "size": self.file_size}
        if self.lfs:
            sibling["lfs"] = {"sha256": self.lfs.oid, "size": self.lfs.size, "pointerSize": self.size}
        return sibling


@dataclass(frozen=True)
class Tree:
    """A commit's files and folders (with git's own ids)."""

    commit: str | None
    blobs: dict[str, Blob]
    folders: dict[str, str]  # path → tree id

    def entries(self, under: str = "", recursive: bool = False) -> list[dict[str, object]]:
        """``list_repo_tree``'s entries below ``under``: one level, or everything below it."""
        prefix = f"{under.strip('/')}/" if under.strip("/") else ""
        if prefix and prefix[:-1] not in self.folders:
            raise EntryNotFoundError(f"no folder {under!r} in the space", hint="list the tree from its root")

        def wanted(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix):])

        found = [shapes.folder_entry(p, oid) for p, oid in self.folders.items() if wanted(p)]
        found += [b.entry() for b in self.blobs.values() if wanted(b.path)]
        return sorted(found, key=lambda e: str(e["path"]))

    def blob(self, path: str) -> Blob:
        found = self.blobs.get(path.strip("/"))
        if found is None:
            raise EntryNotFoundError(f"no file {path!r} in the space at {self.commit or 'main'}",
                                     hint="list_repo_files shows the files there are")
        return found


EMPTY = Tree(None, {}, {})


class SpaceFiles:
    def __init__(self, commits: SpaceCommits) -> None:
        self.commits = commits

    def head(self, record: SpaceRecord) -> str | None:
        """``main``'s commit. A space deployed before it had a repository gets one now, holding its code."""
        if not self.commits.enabled:
            return None
        head = self.commits.repos.head(record.id)
        if head is None and record.code_dir:
            self.commits.ensure_repo(record.id)
            head = self.commits.repos.head(record.id)
        return head

    def commit_at(self, record: SpaceRecord, revision: str) -> str | None:
        if revision in MAIN_NAMES:
            return self.head(record)
        if self.commits.enabled and COMMIT_PATTERN.fullmatch(revision.lower()):
            try:
                return self.commits.repos.resolve(record.id, revision)
            except NotFoundError:
                pass
        raise RevisionNotFoundError(f"{record.id} has no revision {revision!r}",
                                    hint="use main or a commit id (`spaces history` lists them)")

    def tree(self, record: SpaceRecord, revision: str = "main") -> Tree:
        commit = self.commit_at(record, revision)
        if commit is None:
            return EMPTY
        return _tree(self.commits.repos.path(record.id), commit)

    async def stream(self, record: SpaceRecord, blob: Blob) -> AsyncIterator[bytes]:
        """The blob's bytes from git, as they come (a large file is never held whole)."""
        child = await asyncio.create_subprocess_exec(
            "git", f"--git-dir={self.commits.repos.path(record.id)}", "cat-file", "blob", blob.oid,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert child.stdout is not None
        try:
            while chunk := await child.stdout.read(256 * 1024):
                yield chunk
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()


@lru_cache(maxsize=256)
def _tree(repo: Path, commit: str) -> Tree:
    """A commit never changes: its listing is read from git once."""
    listing = run_git(repo, "ls-tree", "-r", "-t", "-l", "-z", "--full-tree", commit)
    blobs: dict[str, Blob] = {}
    folders: dict[str, str] = {}
    for item in filter(None, listing.split("\0")):
        meta, _, path = item.partition("\t")
        mode, kind, oid, size = meta.split()
        if kind == "tree":
            folders[path] = oid
        elif kind == "blob" and mode in FILE_MODES:
            blobs[path] = Blob(path, oid, int(size))
    pointers = lfs_pointers(repo, {b.oid for b in blobs.values() if b.size <= MAX_POINTER})
    return Tree(commit, {p: Blob(p, b.oid, b.size, pointers.get(b.oid)) for p, b in blobs.items()}, folders)


# --- writing -----------------------------------------------------------------------------------------------------
class Scratch:
    """A folder under the platform's scratch dir for one commit's tree, removed afterwards."""

    def __init__(self, p: Platform) -> None:
        self.root = p.settings.data_dir / "tmp" / f"hub-{uuid.uuid4().hex}"
        self.tree = self.root / "tree"
        self.archive = self.root / "upload.tar.gz"

    async def __aenter__(self) -> Scratch:
        self.root.mkdir(parents=True)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root, True)


async def check_out(p: Platform, space_id: str, commit: str | None, dest: Path) -> None:
    """``dest`` gets ``commit``'s files as git holds them (LFS pointers stay pointers, so the next commit keeps
    them as they are), through the upload checks like any upload; nothing without a commit."""
    if commit is None:
        dest.mkdir()
        return
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix="head-", suffix=".tar")
    os.close(fd)  # git archive writes it
    archive = Path(name)
    try:
        await asyncio.to_thread(p.pipeline.commits.repos.archive, space_id, commit, archive)
        await asyncio.to_thread(appfiles.unpack, archive, dest, p.pipeline.limits)
    finally:
        archive.unlink(missing_ok=True)


def copy_code(folder: Path | None, dest: Path) -> None:
    if folder is None:
        dest.mkdir()
    else:
        appfiles.copy_app(folder, dest)


def apply(tree: Path, op: Operation) -> None:
    """One commit operation on the scratch tree. Paths that are never app code are skipped (the preupload
    answer told the client so)."""
    if ignored(op.path):
        return
    target = tree / op.path
    _check_inside(tree, target)
    if isinstance(op, AddFile):
        if target.is_dir() and not target.is_symlink():
            raise UploadError(f"{op.path} is a folder in the space; a file cannot replace it",
                              hint="delete the folder in the same commit first")
        target.parent.mkdir(parents=True, exist_ok=True)
        _check_inside(tree, target)
        target.unlink(missing_ok=True)
        target.write_bytes(op.content)
    elif isinstance(op, DeleteFile):
        if not (target.is_file() or target.is_symlink()):
            raise EntryNotFoundError(f"{op.path}: A file with this name doesn't exist",
                                     hint="list_repo_files shows the files there are")
        target.unlink()
    elif isinstance(op, DeleteFolder):
        if not target.is_dir() or target.is_symlink():
            raise EntryNotFoundError(f"{op.path}: A folder with this name doesn't exist")
        shutil.rmtree(target)


def _check_inside(tree: Path, target: Path) -> None:
    """A link in the space (unpack checked that it stays inside) must not carry a write elsewhere."""
    parent = target.parent.resolve() if target.parent.exists() else target.parent
    if not parent.is_relative_to(tree.resolve()):
        raise UploadError(f"{target.relative_to(tree)} would be written outside the space through a link",
                          hint="commit the file under a path without links")


async def deploy_tree(p: Platform, space_id: str, scratch: Scratch, author: str | None,
                      message: str) -> tuple[str, str | None]:
    """Commit the scratch tree to ``main`` with ``message`` and deploy that commit; (version, commit)."""
    commits = p.pipeline.commits
    owner, name = space_id.split("/", 1)
    if not commits.enabled:
        await asyncio.to_thread(lambda: scratch.archive.write_bytes(appfiles.pack(scratch.tree)))
        return await p.pipeline.accept_upload(owner, name, scratch.archive, author=author), None
    try:
        commit = await asyncio.to_thread(commits.repos.commit_folder, space_id, scratch.tree,
                                         commits.author(author), message or "Commit over the Hub API")
    except GitCommandError as exc:
        raise UploadError(f"the commit could not be written: {exc}", hint="see the platform's log") from None
    archive = await asyncio.to_thread(commits.export, space_id, commit)  # LFS objects in place of pointers
    try:
        return await p.pipeline.accept_upload(owner, name, archive, author=author, commit=commit), commit
    finally:
        archive.unlink(missing_ok=True)


def require_git(p: Platform) -> None:
    if not p.pipeline.commits.enabled:
        raise NotSupportedError(NO_GIT, hint="install git on the platform's machine (apt-get install git)")
