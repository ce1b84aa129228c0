"""`spaces backup` and `spaces restore`: a consistent snapshot of a platform, and the platform back from it on a
fresh data dir (another machine, say).

A backup holds the store (SQLite's online backup API: a consistent copy while the platform writes), the code each
space serves (its ``code_dir``), each space's git repository (its whole history: clones, `spaces history` and
rollbacks work on the restored platform) and the LFS objects, the locks recorded for its environment
(``envs/.locks``: a rebuild installs the same versions), the platform's write token, and optionally the logs. It
holds no environments and no images: they are rebuilt where the backup is restored, when `spaces serve` starts the
spaces. Code folders are copied
after the store: a redeploy meanwhile can remove the version a record of the snapshot names, in which case the
whole snapshot is taken again, so the code always matches the records. Repositories are copied after the store
and refs before objects (git never rewrites an object, and the platform never repacks: ``gc.auto`` is 0), so every
commit a copied ref names is in the copy; a push landing meanwhile may add commits the store has no deploy row
for, which the history then shows as never deployed. LFS objects are copied last, so every object a copied commit
was accepted with is there.

Layout (a folder, or the same as a .tar.gz)::

    manifest.json   format, when, from which data dir, each space's code_dir relative to the backup
    spaces.db       the store
    apps/OWNER/NAME/versions/N/...   the code each space serves
    git/OWNER/NAME.git/...   each space's bare repository (its hooks are installed again on first use)
    lfs/objects/ab/cd/OID    the LFS objects
    envs/.locks/ENV_HASH.txt
    token           the write token (mode 0600), when the platform has one
    logs/OWNER/NAME/{build,run}.log   with --logs
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spaces_runtime.config import Settings
from spaces_runtime.errors import ConflictError, SpacesError, StageTransitionError
from spaces_runtime.stages import ERROR_STAGES, Stage
from spaces_runtime.store import Store

FORMAT = 1
MANIFEST = "manifest.json"
LOCKS = Path("envs") / ".locks"
GIT = "git"
LFS_OBJECTS = Path("lfs") / "objects"
# a repository's parts in the order they are copied: refs first (see above); no hooks (they name this platform's
# interpreter and are written again on the restored one), no quarantine folders of pushes in progress
REPO_FIRST = ("HEAD", "config", "packed-refs", "refs", "logs")
TOKEN = "token"
# Secrets (a later issue adds them, encrypted): their table lives in spaces.db, so the store's snapshot carries
# them still encrypted. Data-dir files that hold secrets at rest belong in this list: copied as they are, never
# decrypted. The key that decrypts them must not be listed here: it travels apart from the backup, and restore
# says so when a backup holds secrets.
SECRET_FILES: tuple[str, ...] = ()
_ATTEMPTS = 3
_REBUILT = ("environments are not in a backup: `spaces serve` rebuilds each one as it starts the spaces "
            "(from its recorded lock, so with the same versions)")


class _CodeMoved(Exception):
    """A code folder a record of the snapshot names went away (a redeploy replaced it): take it again."""


@dataclass
class Summary:
    path: Path
    spaces: list[str]
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"path": str(self.path), "spaces": self.spaces, "notes": self.notes}


def is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def archived_code_dir(code_dir: str, apps_dir: Path, space_id: str) -> str:
    """Where a space's code goes in the backup, relative to it: its place under ``apps/`` (code_dir paths are
    absolute, so a restore elsewhere rebases them), or a folder of its own if it lived elsewhere."""
    path = Path(code_dir)
    for root in (apps_dir, apps_dir.resolve()):
        if path.is_relative_to(root):
            return (Path("apps") / path.relative_to(root)).as_posix()
    return (Path("apps") / space_id / "versions" / "restored").as_posix()


def rebased_code_dir(relative: str, data_dir: Path) -> Path:
    """A code_dir of the backup (``apps/...``) on the data dir it is restored into."""
    parts = Path(relative).parts
    if not parts or parts[0] != "apps" or ".." in parts or Path(relative).is_absolute():
        raise SpacesError(f"the backup names code at '{relative}', which is not under apps/: not restoring it")
    return data_dir.joinpath(*parts)


# --- backup -----------------------------------------------------------------------------------------------------
def write_backup(settings: Settings, dest: Path, logs: bool = False) -> Summary:
    """Write the snapshot to ``dest`` (a .tar.gz, or else a folder), neither of which may exist yet."""
    if dest.exists():
        raise ConflictError(f"{dest} already exists", hint="name a new .tar.gz file or a new folder")
    if not settings.db_path.is_file():
        raise SpacesError(f"no platform in {settings.data_dir} (no {settings.db_path.name})",
                          hint="pass the data dir `spaces serve` uses (--data-dir or SPACES_DATA_DIR)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        spaces = _stage_with_retries(settings, staging, logs)
        if is_archive(dest):
            _pack(staging, dest)
        else:
            staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Summary(dest, spaces, [_REBUILT])


def _stage_with_retries(settings: Settings, staging: Path, logs: bool) -> list[str]:
    for attempt in range(_ATTEMPTS):
        try:
            return _stage(settings, staging, logs)
        except _CodeMoved as moved:
            if attempt == _ATTEMPTS - 1:
                raise SpacesError(f"the code of {moved} kept changing while the backup was taken",
                                  hint="try again once the deploys in progress are done") from None
            for child in staging.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    raise AssertionError("unreachable")


def _stage(settings: Settings, staging: Path, logs: bool) -> list[str]:
    snapshot_db(settings.db_path, staging / "spaces.db")
    store = Store(staging / "spaces.db")
    try:
        records = store.spaces()
    finally:
        store.close()
    code_dirs: dict[str, str] = {}
    for record in records:
        if record.code_dir:
            code_dirs[record.id] = archived_code_dir(record.code_dir, settings.apps_dir, record.id)
            _copy_code(Path(record.code_dir), staging / code_dirs[record.id], record.id)
    _copy_repos(settings.data_dir / GIT, staging / GIT)
    _copy_if_there(settings.data_dir / LFS_OBJECTS, staging / LFS_OBJECTS)
    _copy_if_there(settings.data_dir / LOCKS, staging / LOCKS)
    if logs:
        _copy_if_there(settings.data_dir / "logs", staging / "logs")
    for name in (TOKEN, *SECRET_FILES):
        _copy_if_there(settings.data_dir / name, staging / name)
    manifest = {"format": FORMAT, "created_at": time.time(), "data_dir": str(settings.data_dir.resolve()),
                "spaces": {r.id: {"code_dir": code_dirs.get(r.id), "stage": r.stage.value} for r in records},
                "logs": logs, "secrets": list(SECRET_FILES), "git": (staging / GIT).is_dir()}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return [r.id for r in records]


def snapshot_db(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy of the store while the platform keeps writing to it."""
    live = sqlite3.connect(source, timeout=30)
    copy = sqlite3.connect(target)
    try:
        with copy:
            live.backup(copy)
    finally:
        copy.close()
        live.close()


def _copy_code(folder: Path, target: Path, space_id: str) -> None:
    try:
        shutil.copytree(folder, target, symlinks=True)
    except (FileNotFoundError, shutil.Error) as exc:
        if folder.is_dir():
            raise SpacesError(f"could not copy the code of {space_id} from {folder}: {exc}") from exc
        raise _CodeMoved(space_id) from None


def _copy_repos(root: Path, target: Path) -> None:
    for repo in sorted(root.glob("*/*.git")):
        if not (repo / "HEAD").is_file():
            continue
        copy = target / repo.parent.name / repo.name
        for part in REPO_FIRST:
            _copy_if_there(repo / part, copy / part)
        shutil.copytree(repo / "objects", copy / "objects", symlinks=True,
                        ignore=shutil.ignore_patterns("incoming-*", "tmp_*"))


def _copy_if_there(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _pack(staging: Path, dest: Path) -> None:
    partial = dest.with_name(f".{dest.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the write token
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for child in sorted(staging.iterdir()):
                tar.add(child, arcname=child.name)
        partial.rename(dest)
    finally:
        partial.unlink(missing_ok=True)


def unpack(archive: Path, dest: Path) -> None:
    """A backup .tar.gz as a backup folder (``dest`` must not exist yet)."""
    if dest.exists():
        raise ConflictError(f"{dest} already exists", hint="name a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _manifest(_open_backup(archive, staging))
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- restore ----------------------------------------------------------------------------------------------------
def restore(source: Path, data_dir: Path) -> Summary:
    """Bring a backup into a fresh ``data_dir``: the store with every code_dir rebased onto it, the code, the
    recorded locks, the token, the logs. Run it before `spaces serve --data-dir DATA_DIR`, which then starts every
    space that was meant to run, rebuilding its environment."""
    data_dir = data_dir.resolve()
    _check_fresh(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    unpacked = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        root = _open_backup(source, unpacked)
        manifest = _manifest(root)
        secrets = [name for name in manifest.get("secrets") or [] if name in SECRET_FILES]
        for name in ("spaces.db", "apps", GIT, str(LFS_OBJECTS), str(LOCKS), "logs", TOKEN, *secrets):
            _copy_if_there(root / name, data_dir / name)
        if (data_dir / TOKEN).is_file():
            (data_dir / TOKEN).chmod(0o600)
        spaces, notes = _rebase(data_dir, manifest)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    if secrets:
        notes.append("this backup holds encrypted secrets: put their key in place before `spaces serve`")
    return Summary(data_dir, spaces, [*notes, _REBUILT])


def _check_fresh(data_dir: Path) -> None:
    found = [name for name in ("spaces.db", "apps", GIT) if (data_dir / name).exists()]
    if found:
        raise ConflictError(f"{data_dir} already holds a platform ({', '.join(found)})",
                            hint="restore into a new, empty data dir, then `spaces serve --data-dir` it")


def _open_backup(source: Path, unpacked: Path) -> Path:
    if source.is_dir():
        return source
    if not source.is_file():
        raise SpacesError(f"no backup at {source}", hint="pass the .tar.gz or the folder `spaces backup` wrote")
    try:
        with tarfile.open(source, mode="r:gz") as tar:
            tar.extractall(unpacked, filter="data")  # refuses links and paths that leave the folder
    except (tarfile.TarError, OSError) as exc:
        raise SpacesError(f"{source} is not a readable backup ({exc})") from None
    return unpacked


def _manifest(root: Path) -> dict[str, Any]:  # JSON
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpacesError(f"{root} is not a backup of spaces-runtime: {MANIFEST} unreadable ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise SpacesError(f"this backup has format {manifest.get('format')}; this spaces-runtime reads {FORMAT}",
                          hint="restore it with the version of spaces-runtime that wrote it")
    return dict(manifest)


def _rebase(data_dir: Path, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """code_dir paths onto the new data dir; builds the backup caught running end as interrupted; a space whose
    first build had not finished (no code in the backup) ends in BUILD_ERROR instead of building forever."""
    listed = manifest.get("spaces")
    spaces: dict[str, dict[str, str | None]] = listed if isinstance(listed, dict) else {}
    notes: list[str] = []
    store = Store(data_dir / "spaces.db")
    try:
        for record in store.spaces():
            relative = (spaces.get(record.id) or {}).get("code_dir")
            store.update(record.id, code_dir=str(rebased_code_dir(relative, data_dir)) if relative else None)
            for build in store.builds(record.id):
                if build["status"] == "running":
                    store.finish_build(int(build["id"]), "interrupted", "the backup was taken while it ran")
            if not relative and record.stage not in ERROR_STAGES | {Stage.PAUSED, Stage.STOPPED, Stage.DELETING}:
                _fail_first_build(store, record.id)
                notes.append(f"{record.id}: its first build had not finished when the backup was taken; "
                             "deploy it again")
        return [r.id for r in store.spaces()], notes
    finally:
        store.close()


def _fail_first_build(store: Store, space_id: str) -> None:
    error = "the backup was taken before this space's first build finished: deploy it again"
    try:
        store.set_stage(space_id, Stage.BUILD_ERROR, "restored from a backup", error)
    except StageTransitionError:  # starting: only a build may fail the build
        store.set_stage(space_id, Stage.BUILDING, "restored from a backup")
        store.set_stage(space_id, Stage.BUILD_ERROR, "restored from a backup", error)
