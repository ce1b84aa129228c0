"""App files: what counts as app code, packing a folder, receiving and unpacking an upload, the code hash.

One list of what is not app code (``NOT_APP_CODE``) serves the CLI's packer, the upload path, example copies, image
builds and the code hash, so that what is uploaded, built and fingerprinted is the same set of files.

Unpacking streams the archive once and checks every member before writing it (name, type, link target, depth,
the running totals of files and bytes): a hostile archive is refused at the first bad member, and a decompression
bomb is refused once the bytes actually decompressed pass the limit, not after all of them were. This is written
here rather than left to ``tarfile``'s ``filter="data"`` because that filter does not bound the bytes decompressed
and is missing on Python 3.11.0-3.11.3 (Debian bookworm's python3 is 3.11.2).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spaces_runtime.errors import DiskFullError, UploadError, UploadTooLargeError

# Never app code: rebuilt by the platform, private to the author's machine, or written by the app at run time.
NOT_APP_CODE = frozenset({".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache",
                          ".ruff_cache", ".DS_Store", "flagged", ".gradio"})
MAX_DEPTH = 64  # folders deep; real app folders are a handful deep, and deeper paths break tools (PATH_MAX)
MAX_NAME_BYTES = 1024
CHUNK = 1024 * 1024
SAFE_TAR_HINT = "create it with `tar -czf app.tgz -C my-app .` or use `spaces deploy DIR`"


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int
    max_unpacked_bytes: int
    max_files: int


# --- packing and copying ---------------------------------------------------------------------------------------------
def is_app_code(relative: Path) -> bool:
    return not any(part in NOT_APP_CODE for part in relative.parts)


def pack(folder: Path) -> bytes:
    """A gzip'd tar of the folder's app code (paths relative to the folder)."""
    if not folder.is_dir():
        raise UploadError(f"{folder} is not a folder", hint="pass the app folder that holds app.py and README.md")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if is_app_code(relative):
                tar.add(path, arcname=relative.as_posix(), recursive=False)
    return buffer.getvalue()


def copy_app(folder: Path, target: Path) -> None:
    """Copy the app code of ``folder`` to ``target`` (which must not exist), links kept as links."""
    shutil.copytree(folder, target, symlinks=True, ignore=lambda _dir, names: [n for n in names if n in NOT_APP_CODE])


def code_hash(folder: Path) -> str:
    """sha256 over the app's files (relative paths and contents); a linked folder counts as its link."""
    digest = hashlib.sha256()
    for path in _code_files(folder):
        relative = path.relative_to(folder).as_posix()
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        # length-prefixed, so that moving bytes between a name and a content changes the hash
        for part in (relative.encode("utf-8", "surrogateescape"), content):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def _code_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):  # does not follow symlinks
        found.extend(Path(root, d) for d in dirs if Path(root, d).is_symlink())
        dirs[:] = [d for d in dirs if d not in NOT_APP_CODE and not Path(root, d).is_symlink()]
        found.extend(Path(root, name) for name in files)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


# --- receiving -------------------------------------------------------------------------------------------------------
async def receive(chunks: AsyncIterator[bytes], scratch_dir: Path, limits: UploadLimits) -> Path:
    """Stream a request body to a scratch file, refusing it as soon as it passes the size limit. On any failure
    (too large, empty, the sender leaving, a full disk) the scratch file is removed."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=scratch_dir, suffix=".tar.gz")
    try:
        received = await _write_body(chunks, fd, limits)
    except OSError as exc:
        os.unlink(name)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError.at(scratch_dir) from exc
        raise
    except BaseException:
        os.unlink(name)
        raise
    if received == 0:
        os.unlink(name)
        raise UploadError("upload is empty", hint="send a gzip'd tar of the app folder (spaces deploy DIR does)")
    return Path(name)


async def _write_body(chunks: AsyncIterator[bytes], fd: int, limits: UploadLimits) -> int:
    received = 0
    with os.fdopen(fd, "wb") as out:
        async for chunk in chunks:
            received += len(chunk)
            if received > limits.max_upload_bytes:
                raise UploadTooLargeError(
                    f"upload is larger than the limit of {limits.max_upload_bytes // (1024 * 1024)} MiB",
                    hint="leave data, checkpoints and virtualenvs out of the app folder (SPACES_MAX_UPLOAD_BYTES)")
            out.write(chunk)
    return received


# --- member checks (pure) --------------------------------------------------------------------------------------------
def check_member(member: tarfile.TarInfo) -> str:
    """The member's safe relative path, or UploadError saying what is wrong with it (pure)."""
    name = _checked_name(member.name)
    normalised = posixpath.normpath(name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UploadError(f"archive member {name!r} has an absolute path", hint="archive paths relative to the folder")
    if normalised == ".." or normalised.startswith("../") or "/../" in f"/{name}/":
        raise UploadError(f"archive member {name!r} points outside the app folder ('..')",
                          hint="remove '..' from archive paths")
    if normalised.count("/") >= MAX_DEPTH:
        raise UploadError(f"archive member {name[:80]!r}... is {normalised.count('/') + 1} folders deep, more "
                          f"than the limit of {MAX_DEPTH}", hint="flatten the app folder")
    if member.isdev() or member.isfifo():
        raise UploadError(f"archive member {name!r} is a device or fifo", hint="an app folder holds only files")
    if member.issym() or member.islnk():
        _check_link(member, normalised)
    elif not (member.isfile() or member.isdir()):
        raise UploadError(f"archive member {name!r} is not a file or folder")
    return normalised


def _checked_name(name: str) -> str:
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape")[:80]
        raise UploadError(f"archive member {shown!r} has a name that is not UTF-8",
                          hint="rename the file with UTF-8 characters only") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise UploadError(f"archive member {name[:80]!r}... has a {len(encoded)}-byte path, more than the limit of "
                          f"{MAX_NAME_BYTES}", hint="shorten the path")
    if "\x00" in name:
        raise UploadError(f"archive member {name!r} has a NUL byte in its name")
    return name


def _check_link(member: tarfile.TarInfo, normalised: str) -> None:
    target = _checked_name(member.linkname)
    if member.issym():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normalised), target))
    else:  # hard links name their target from the archive root
        resolved = posixpath.normpath(target)
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        kind = "symlink" if member.issym() else "hard link"
        raise UploadError(f"archive member {member.name!r} is a {kind} to {target!r}, outside the app folder",
                          hint="copy the file into the folder instead of linking to it")


@dataclass
class Totals:
    """What an extraction has used so far; ``decompressed`` counts the bytes read out of the archive stream."""

    files: int = 0
    declared: int = 0
    decompressed: int = 0


def count_member(member: tarfile.TarInfo, totals: Totals, limits: UploadLimits) -> None:
    totals.files += 1
    if totals.files > limits.max_files:
        raise UploadTooLargeError(f"archive holds more than {limits.max_files} entries",
                                  hint="leave virtualenvs, node_modules and data sets out of the app folder")
    totals.declared += max(member.size, 0)
    if totals.declared > limits.max_unpacked_bytes:
        raise _too_big(limits)


def _too_big(limits: UploadLimits) -> UploadTooLargeError:
    return UploadTooLargeError(f"archive unpacks to more than {limits.max_unpacked_bytes // (1024 * 1024)} MiB",
                               hint="leave large data out of the app folder")


# --- unpacking -------------------------------------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """Counts the bytes read from the decompressed stream, so the limit bounds the work, not only the result."""

    def __init__(self, inner: BinaryIO, totals: Totals, limits: UploadLimits) -> None:
        self._inner, self._totals, self._limits = inner, totals, limits

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        self._totals.decompressed += len(data)
        # the tar headers and padding add a little on top of the members' sizes
        if self._totals.decompressed > self._limits.max_unpacked_bytes + 1024 * (self._totals.files + 2):
            raise _too_big(self._limits)
        buffer[: len(data)] = data
        return len(data)


def unpack(archive: Path, dest: Path, limits: UploadLimits) -> Path:
    """Check and extract ``archive`` (a tar, gzip'd or not) into ``dest``, which must not exist. Returns the app
    folder: the archive's single top-level folder when everything sits in one, else ``dest``. On any refusal
    nothing stays on disk."""
    with archive.open("rb") as raw:
        return unpack_stream(raw, dest, limits, Totals())


def unpack_stream(raw: BinaryIO, dest: Path, limits: UploadLimits, totals: Totals) -> Path:
    dest.mkdir(parents=True)
    try:
        with _open_stream(raw, totals, limits) as tar:
            for member in _members(tar):
                count_member(member, totals, limits)
                _extract(tar, member, check_member(member), dest)
        _check_links_stay_inside(dest)
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError.at(dest.parent) from exc
        raise UploadError(f"upload is not a readable gzip'd tar archive ({exc})", hint=SAFE_TAR_HINT) from exc
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UploadError(f"upload is not a readable gzip'd tar archive ({exc})", hint=SAFE_TAR_HINT) from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return _app_root(dest)


def _open_stream(raw: BinaryIO, totals: Totals, limits: UploadLimits) -> tarfile.TarFile:
    gzipped = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw  # type: ignore[assignment]
    counted = io.BufferedReader(_CountingReader(inner, totals, limits), buffer_size=CHUNK)
    return tarfile.open(fileobj=counted, mode="r|")


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tar.next()) is not None:
        yield member


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, relative: str, dest: Path) -> None:
    if relative == ".":
        return
    path = dest / relative
    _check_parent_inside(path, dest)
    if member.isdir():
        path.mkdir(parents=True, exist_ok=True)
    elif member.issym():
        path.unlink(missing_ok=True)
        os.symlink(member.linkname, path)
    elif member.islnk():
        source = dest / posixpath.normpath(member.linkname)
        if not source.is_file() or source.is_symlink():
            raise UploadError(f"archive member {member.name!r} is a hard link to {member.linkname!r}, which is not "
                              "a file earlier in the archive", hint=SAFE_TAR_HINT)
        shutil.copyfile(source, path)
    else:
        _write_file(tar, member, path)


def _check_parent_inside(path: Path, dest: Path) -> None:
    """A symlink extracted earlier must not carry a later member outside the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not Path(os.path.realpath(path.parent)).is_relative_to(os.path.realpath(dest)):
        raise UploadError(f"archive member {path.relative_to(dest).as_posix()!r} is written through a link that "
                          "leads outside the app folder", hint="copy files into the folder instead of linking")


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    source = tar.extractfile(member)
    if path.is_symlink():
        path.unlink()
    with path.open("wb") as out:
        if source is not None:
            shutil.copyfileobj(source, out, CHUNK)
    path.chmod(0o755 if member.mode & 0o111 else 0o644)


def _check_links_stay_inside(dest: Path) -> None:
    """Each link is checked by its own name when it arrives; a chain of them (``a -> .``, ``b -> a/..``) can still
    lead out, and the gateway and the app follow links: refuse any that resolves outside."""
    root = os.path.realpath(dest)
    for folder, dirs, files in os.walk(dest):
        for name in (*dirs, *files):
            path = Path(folder, name)
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(root):
                raise UploadError(f"archive member {path.relative_to(dest).as_posix()!r} is a link that leads "
                                  "outside the app folder", hint="copy the file into the folder instead of linking")


def _app_root(dest: Path) -> Path:
    """Accept both `tar -C app .` and `tar app/`: a lone top-level folder is the app folder."""
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest
