"""Code versions on disk: apps/OWNER/NAME/versions/N, one folder per upload; the record's ``code_dir`` names the
one that serves (restarts use it)."""

from __future__ import annotations

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


def prune_versions(keep: Path) -> None:
    root = version_root(keep)
    if root.parent.name != "versions":
        return
    old = sorted((p for p in root.parent.iterdir() if p != root), key=lambda p: p.name)
    for path in old[: max(0, len(old) - (KEPT_VERSIONS - 1))]:
        shutil.rmtree(path, ignore_errors=True)
