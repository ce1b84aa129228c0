"""Git LFS for spaces' repositories: the batch API with the basic transfer, at ``{remote}.git/info/lfs`` (where
git-lfs looks for it by itself, as on the Hub).

Objects are stored once by oid under {data_dir}/lfs/objects/ab/cd/OID, written to a scratch file whose sha256
and size are checked before it takes its place. Which space holds which object is recorded: a space reads only
the objects it holds, and an object joins a space only when its bytes are uploaded to that space (an oid alone,
which any clone of a private space's pointer files shows, opens nothing elsewhere). Deploys see the files, not
the pointers: ``smudge`` puts the objects in place in the commit's export.

Quota: a space may hold ``quota`` bytes of objects; one stored for several spaces counts in full for each (a
space's usage never depends on what other spaces hold, which would tell it about private ones, and never grows
because someone else deletes theirs). The batch API refuses an upload that would pass it before a byte is sent;
the PUT checks again (a client may skip the batch). ``spaces gc`` removes what no commit references any more.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces_runtime.errors import SpacesError, UploadError, UploadTooLargeError

POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1\n"
MAX_POINTER = 1024  # git-lfs's own bound on a pointer file
OID = re.compile(r"[0-9a-f]{64}")
MEDIA_TYPE = "application/vnd.git-lfs+json"
CHUNK = 1024 * 1024
SCHEMA = """
CREATE TABLE IF NOT EXISTS lfs_objects (
    space_id TEXT NOT NULL, oid TEXT NOT NULL, size INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (space_id, oid)
);
"""


class StorageQuotaError(SpacesError):
    """The space's LFS storage would pass its quota: 507, git-lfs's code for "insufficient storage"."""

    http_status = 507


@dataclass(frozen=True)
class Quota:
    used: int  # bytes the space holds now
    limit: int

    def refusal(self, space_id: str, adding: int) -> str | None:
        """Why adding ``adding`` bytes is refused (what is used, the limit, what to do); None when it fits."""
        if self.used + adding <= self.limit:
            return None
        return (f"this upload would pass {space_id}'s LFS storage quota: {_size(self.used)} used + "
                f"{_size(adding)} in this upload > {_size(self.limit)} (push smaller files, or rewrite the history "
                "without large ones and run `spaces gc`; the platform's admin can raise SPACES_SPACE_STORAGE_BYTES)")


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count < 2**30 else f"{count / 2**30:.2f} GiB"


@dataclass(frozen=True)
class StoredObject:
    oid: str
    size: int
    last_used: float
    holders: tuple[str, ...]  # the spaces it was uploaded to


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int


def parse_pointer(data: bytes) -> Pointer | None:
    """A git-lfs pointer file's object; None for any other content."""
    if len(data) > MAX_POINTER or not data.startswith(POINTER_PREFIX):
        return None
    fields = dict(line.split(" ", 1) for line in data.decode("ascii", "replace").splitlines()[1:] if " " in line)
    oid, size = fields.get("oid", "").removeprefix("sha256:"), fields.get("size", "")
    return Pointer(oid, int(size)) if OID.fullmatch(oid) and size.isdigit() else None


def batch_answer(operation: str, objects: list[dict[str, Any]], held: set[str], href: Callable[[str], str],
                 header: dict[str, str], max_size: int, over_quota: Callable[[int], str | None] | None = None
                 ) -> dict[str, Any]:
    """The batch API's answer (pure): per object, where to send or fetch it, or why not. An upload of an object
    this space holds already is skipped (no actions); one stored for another space is uploaded again (see
    above); a download of one it does not hold is a 404. ``over_quota(bytes)``: why the uploads' bytes together
    do not fit the space's quota; then every one of them is refused (507), since the push could not land anyway."""
    answered = []
    uploads: dict[str, int] = {str(o["oid"]): int(o["size"]) for o in objects
                               if operation == "upload" and _uploads(o, held, max_size)}
    refused = over_quota(sum(uploads.values())) if uploads and over_quota else None
    for item in objects:
        oid, size = str(item.get("oid", "")), item.get("size")
        entry: dict[str, Any] = {"oid": oid, "size": size}
        if not OID.fullmatch(oid) or not isinstance(size, int) or size < 0:
            entry["error"] = {"code": 422, "message": "oid must be 64 hex digits (sha256) and size a count"}
        elif operation == "upload" and size > max_size:
            entry["error"] = {"code": 413, "message": f"{size} bytes is over this platform's {max_size} per file"}
        elif operation == "upload" and oid not in held and refused:
            entry["error"] = {"code": 507, "message": refused}
        elif operation == "upload" and oid not in held:
            entry["actions"] = {"upload": {"href": href(oid), "header": header}}
        elif operation == "download" and oid in held:
            entry["actions"] = {"download": {"href": href(oid), "header": header}}
        elif operation == "download":
            entry["error"] = {"code": 404, "message": f"this space has no LFS object {oid}"}
        answered.append(entry)
    return {"transfer": "basic", "objects": answered, "hash_algo": "sha256"}


def _uploads(item: dict[str, Any], held: set[str], max_size: int) -> bool:
    oid, size = str(item.get("oid", "")), item.get("size")
    return bool(OID.fullmatch(oid)) and isinstance(size, int) and 0 <= size <= max_size and oid not in held


class LfsObjects:
    def __init__(self, root: Path, db_path: Path, max_size: int, quota: int) -> None:
        self.root = root
        self.max_size = max_size
        self.quota = quota
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()
        with self._lock:
            self._db.executescript(SCHEMA)

    def path(self, oid: str) -> Path:
        return self.root / "objects" / oid[:2] / oid[2:4] / oid

    def held(self, space_id: str, oids: list[str]) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT oid FROM lfs_objects WHERE space_id = ?", (space_id,)).fetchall()
        have = {str(row[0]) for row in rows}
        return {oid for oid in oids if oid in have and self.path(oid).is_file()}

    def usage(self, space_id: str) -> int:
        """Bytes of LFS objects the space holds (what a quota counts)."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM lfs_objects WHERE space_id = ?",
                                   (space_id,)).fetchone()
        return int(row[0])

    def touch(self, space_id: str, oids: set[str]) -> None:
        """A push names objects the space holds already (it skips their upload): they count as fresh for gc's
        grace period, so gc cannot remove one between this push's batch and its commits landing."""
        with self._lock:
            self._db.executemany("UPDATE lfs_objects SET at = ? WHERE space_id = ? AND oid = ?",
                                 [(time.time(), space_id, oid) for oid in oids])

    def quota_of(self, space_id: str) -> Quota:
        return Quota(self.usage(space_id), self.quota)

    def share(self, source: str, target: str) -> None:
        """A duplicate or a move: the target holds what the source holds (its history points at the same objects),
        counted for it as for any space holding them."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO lfs_objects (space_id, oid, size, at) SELECT ?, oid, size, at "
                             "FROM lfs_objects WHERE space_id = ?", (target, source))

    def forget(self, space_id: str) -> None:
        """The space no longer holds its objects (the files stay while another space holds them)."""
        with self._lock:
            self._db.execute("DELETE FROM lfs_objects WHERE space_id = ?", (space_id,))

    # --- gc ---------------------------------------------------------------------------------------------------
    def stored(self) -> list[StoredObject]:
        """Every object file, with the spaces holding it and when it last arrived (a row's time or the file's)."""
        with self._lock:
            rows = self._db.execute("SELECT oid, space_id, at FROM lfs_objects").fetchall()
        holders: dict[str, list[str]] = {}
        latest: dict[str, float] = {}
        for oid, space_id, at in rows:
            holders.setdefault(str(oid), []).append(str(space_id))
            latest[str(oid)] = max(latest.get(str(oid), 0.0), float(at))
        found = []
        for path in (self.root / "objects").glob("??/??/*"):
            if OID.fullmatch(path.name) and path.is_file():
                info = path.stat()
                found.append(StoredObject(path.name, info.st_size, max(latest.get(path.name, 0.0), info.st_mtime),
                                          tuple(sorted(holders.get(path.name, ())))))
        return found

    def release(self, space_id: str, oid: str, before: float) -> None:
        """The space no longer holds an object none of its commits references (its quota gets the bytes back);
        not one uploaded since ``before``: a push in progress may be about to reference it."""
        with self._lock:
            self._db.execute("DELETE FROM lfs_objects WHERE space_id = ? AND oid = ? AND at < ?",
                             (space_id, oid, before))

    def remove(self, oid: str, before: float) -> int:
        """Remove an object no commit references: its rows and its file. Bytes freed; -1 when it arrived again
        since ``before`` (an upload in progress wants it), in which case it stays."""
        with self._lock:
            row = self._db.execute("SELECT MAX(at) FROM lfs_objects WHERE oid = ?", (oid,)).fetchone()
            path = self.path(oid)
            try:
                info = path.stat()
            except FileNotFoundError:
                info = None
            if (row[0] is not None and float(row[0]) >= before) or (info is not None and info.st_mtime >= before):
                return -1
            self._db.execute("DELETE FROM lfs_objects WHERE oid = ?", (oid,))
            path.unlink(missing_ok=True)
        return info.st_size if info is not None else 0

    # --- upload -------------------------------------------------------------------------------------------------
    def open_scratch(self) -> tuple[int, Path]:
        scratch = self.root / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=scratch, prefix="upload-")
        return fd, Path(name)

    def keep(self, space_id: str, oid: str, scratch: Path, digest: str, size: int) -> None:
        """Check what was uploaded against its oid, store it once, and record that the space holds it."""
        if digest != oid:
            scratch.unlink(missing_ok=True)
            raise UploadError(f"LFS object {oid} arrived with sha256 {digest}: it was changed on the way",
                              hint="push again")
        target = self.path(oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:  # gc removes a file under this lock: it never goes between this check and the row
            held = self.held(space_id, [oid])
            refused = None if held else self.quota_of(space_id).refusal(space_id, size)
            if refused:
                scratch.unlink(missing_ok=True)
                raise StorageQuotaError(refused)
            if target.is_file():
                scratch.unlink(missing_ok=True)  # stored for another space already: the same bytes, once
            else:
                scratch.chmod(0o644)
                os.replace(scratch, target)
            self._db.execute("INSERT OR REPLACE INTO lfs_objects (space_id, oid, size, at) VALUES (?,?,?,?)",
                             (space_id, oid, size, time.time()))

    def too_large(self) -> UploadTooLargeError:
        return UploadTooLargeError(f"an LFS object is over this platform's {self.max_size} bytes per file",
                                   hint="raise SPACES_MAX_UPLOAD_BYTES, or keep the file elsewhere")

    # --- deploys ----------------------------------------------------------------------------------------------
    def smudge(self, space_id: str, archive: Path) -> list[str]:
        """Rewrite the tar at ``archive`` with every pointer file this space holds the object of replaced by the
        object; returns the paths of pointers whose object it does not hold (they stay pointers)."""
        missing: list[str] = []
        rewritten = archive.with_suffix(".lfs.tar")
        with tarfile.open(archive, "r|") as source, tarfile.open(rewritten, "w|", format=tarfile.PAX_FORMAT) as out:
            for member in _members(source):
                data = source.extractfile(member) if member.isfile() else None
                if data is None or member.size > MAX_POINTER:
                    out.addfile(member, data)
                    continue
                content = data.read()
                pointer = parse_pointer(content)
                stored = self.path(pointer.oid) if pointer else None
                if pointer is None or stored is None:
                    out.addfile(member, _bytes(content))
                elif not self.held(space_id, [pointer.oid]):
                    missing.append(member.name)
                    out.addfile(member, _bytes(content))
                else:
                    member.size = stored.stat().st_size
                    with stored.open("rb") as body:
                        out.addfile(member, body)
        os.replace(rewritten, archive)
        return missing


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := tar.next()) is not None:
        yield member


def _bytes(content: bytes) -> io.BytesIO:
    return io.BytesIO(content)
