"""Uploads are gzip'd tars of an app folder. Everything hostile is refused before a byte lands in the app's
directory: members are checked first (pure), extracted into a scratch folder, and only then moved into place."""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.errors import UploadError, UploadTooLargeError


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int
    max_unpacked_bytes: int
    max_files: int


async def receive(chunks: AsyncIterator[bytes], scratch_dir: Path, limits: UploadLimits) -> Path:
    """Stream the request body to a scratch file, refusing it as soon as it passes the size limit."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=scratch_dir, suffix=".tar.gz")
    received = 0
    with os.fdopen(fd, "wb") as out:
        async for chunk in chunks:
            received += len(chunk)
            if received > limits.max_upload_bytes:
                out.close()
                os.unlink(name)
                raise UploadTooLargeError(
                    f"upload is larger than the limit of {limits.max_upload_bytes // (1024 * 1024)} MiB",
                    hint="leave data, checkpoints and virtualenvs out of the app folder (SPACES_MAX_UPLOAD_BYTES)",
                )
            out.write(chunk)
    if received == 0:
        os.unlink(name)
        raise UploadError("upload is empty", hint="send a gzip'd tar of the app folder (spaces deploy DIR does)")
    return Path(name)


def check_member(member: tarfile.TarInfo) -> str:
    """The member's safe relative path, or UploadError saying what is wrong with it (pure)."""
    name = member.name
    normalised = posixpath.normpath(name)
    if name.startswith("/") or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise UploadError(f"archive member {name!r} has an absolute path", hint="archive paths relative to the folder")
    if normalised == ".." or normalised.startswith("../") or "/../" in f"/{name}/":
        raise UploadError(f"archive member {name!r} points outside the app folder ('..')",
                          hint="remove '..' from archive paths")
    if member.isdev() or member.isfifo():
        raise UploadError(f"archive member {name!r} is a device or fifo", hint="an app folder holds only files")
    if member.issym() or member.islnk():
        _check_link(member, normalised)
    elif not (member.isfile() or member.isdir()):
        raise UploadError(f"archive member {name!r} is not a file or folder")
    return normalised


def _check_link(member: tarfile.TarInfo, normalised: str) -> None:
    target = member.linkname
    if member.issym():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normalised), target))
    else:  # hard links name their target from the archive root
        resolved = posixpath.normpath(target)
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        kind = "symlink" if member.issym() else "hard link"
        raise UploadError(f"archive member {member.name!r} is a {kind} to {target!r}, outside the app folder",
                          hint="copy the file into the folder instead of linking to it")


def check_members(members: list[tarfile.TarInfo], limits: UploadLimits) -> None:
    if len(members) > limits.max_files:
        raise UploadTooLargeError(f"archive holds {len(members)} entries, more than the limit of {limits.max_files}",
                                  hint="leave virtualenvs, node_modules and data sets out of the app folder")
    total = 0
    for member in members:
        check_member(member)
        total += max(member.size, 0)
        if total > limits.max_unpacked_bytes:
            raise UploadTooLargeError(
                f"archive unpacks to more than {limits.max_unpacked_bytes // (1024 * 1024)} MiB",
                hint="leave large data out of the app folder")


def read_members(tar: tarfile.TarFile, limits: UploadLimits) -> list[tarfile.TarInfo]:
    """The members, read one by one so that an archive of millions of tiny headers is refused at the limit
    instead of being read whole into memory first."""
    members = []
    for member in tar:
        members.append(member)
        if len(members) > limits.max_files:
            raise UploadTooLargeError(f"archive holds more than {limits.max_files} entries",
                                      hint="leave virtualenvs, node_modules and data sets out of the app folder")
    return members


def unpack(archive: Path, dest: Path, limits: UploadLimits) -> Path:
    """Check every member, then extract into ``dest`` (which must not exist). Returns the app folder: the archive's
    single top-level folder when everything sits in one, else ``dest`` itself."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = read_members(tar, limits)
            check_members(members, limits)
            dest.mkdir(parents=True)
            # "data" filter: defence in depth on top of our own checks (modes, owners, links).
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UploadError(f"upload is not a readable gzip'd tar archive ({exc})",
                          hint="create it with `tar -czf app.tgz -C my-app .` or use `spaces deploy DIR`") from exc
    except UploadError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return _app_root(dest)


def _app_root(dest: Path) -> Path:
    """Accept both `tar -C app .` and `tar app/`: a lone top-level folder is the app folder."""
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest
