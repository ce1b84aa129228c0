"""Code versions on disk: apps/OWNER/NAME/versions/N, one folder per upload; the record's ``code_dir`` names the
one that serves (restarts use it)."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from spaces_runtime.store import Store

KEPT_VERSIONS = 2  # the running code and the one being deployed beside it


def new_version_dir(apps_dir: Path, owner: str, name: str) -> Path:
    return apps_dir / owner / name / "versions" / f"{time.time_ns()}"


def version_root(app_dir: Path) -> Path:
    """versions/N, whether the app folder is versions/N itself or the one folder an archive held inside it."""
    return app_dir if app_dir.parent.name == "versions" else app_dir.parent


def keep_version(store: Store, space_id: str, app_dir: Path, worked: bool) -> None:
    """A version that runs becomes the space's code and older ones go; one that failed is removed, unless the
    space has no code at all yet (then `spaces restart` can retry it)."""
    record = store.find(space_id)
    current = Path(record.code_dir) if record is not None and record.code_dir else None
    if worked or current is None:
        store.update(space_id, code_dir=str(app_dir))
        prune_versions(keep=app_dir)
    elif current != app_dir:
        shutil.rmtree(version_root(app_dir), ignore_errors=True)


def discard_version(store: Store, space_id: str, app_dir: Path) -> None:
    """A version that will never run (its deploy was superseded or interrupted) goes, unless it is the code."""
    record = store.find(space_id)
    if record is None or record.code_dir is None or version_root(Path(record.code_dir)) != version_root(app_dir):
        shutil.rmtree(version_root(app_dir), ignore_errors=True)


def version_name(app_dir: Path | str | None) -> str | None:
    """The version number of an app folder (the name of its versions/N folder)."""
    return None if app_dir is None else version_root(Path(app_dir)).name


def newest_version(apps_dir: Path, space_id: str) -> Path | None:
    """The app folder of the newest version on disk, unpacked as it was uploaded (see ``appfiles._app_root``)."""
    root = apps_dir / space_id / "versions"
    found = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.is_dir() else []
    folders = sorted(found, key=lambda p: (len(p.name), p.name))
    if not folders:
        return None
    entries = list(folders[-1].iterdir())
    lone = len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink()
    return entries[0] if lone else folders[-1]


def sweep(apps_dir: Path, wanted: dict[str, set[str]]) -> list[Path]:
    """Remove every version folder no space wants (``wanted``: space id → version names), and the folders of
    spaces that have no record (an upload that failed half-way, a delete interrupted); returns what went."""
    gone: list[Path] = []
    for versions in sorted(apps_dir.glob("*/*/versions")) if apps_dir.is_dir() else []:
        space_id = f"{versions.parent.parent.name}/{versions.parent.name}"
        keep = wanted.get(space_id)
        doomed = [versions.parent] if keep is None else [p for p in versions.iterdir() if p.name not in keep]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
        with contextlib.suppress(OSError):  # the owner's folder, once its last space is gone
            versions.parent.parent.rmdir()
    return gone


def prune_versions(keep: Path) -> None:
    root = version_root(keep)
    if root.parent.name != "versions":
        return
    old = sorted((p for p in root.parent.iterdir() if p != root), key=lambda p: p.name)
    for path in old[: max(0, len(old) - (KEPT_VERSIONS - 1))]:
        shutil.rmtree(path, ignore_errors=True)
