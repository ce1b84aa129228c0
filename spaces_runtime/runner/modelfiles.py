"""An uploaded model's files on disk: staged beside the live one, checked, then committed by renames.

Layout: ``models/<name>/spec.json`` names the live file (``model-<sha256 prefix>.pt`` or ``.pt2``) and the app
that owns it. A new upload goes to a hidden temp file in the same folder (so the rename stays on one
filesystem); only once it passed its checks is it renamed to its content-addressed name and spec.json replaced.
Replacing spec.json is the commit: before it the old model is live and whole, after it the new one is, and a
failed upload leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces_runtime.errors import BadInputError

SUFFIXES = {"torchscript": ".pt", "export": ".pt2"}


@dataclass(frozen=True)
class Staged:
    path: Path
    digest: str  # sha256 of the content: the committed file's name, so two versions never share a path


@contextlib.contextmanager
def staged(folder: Path, data: bytes, fmt: str) -> Iterator[Staged]:
    """``data`` written to a temp file in ``folder``; removed on exit unless ``commit`` moved it."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=SUFFIXES[fmt])
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the bytes do
        yield Staged(path, hashlib.sha256(data).hexdigest())
    finally:
        path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):  # not empty: another upload of this name got in meanwhile
                folder.rmdir()


def check_archive(file: Path) -> None:
    """TorchScript and torch.export files are zip archives; anything else is refused before the worker sees it."""
    if not zipfile.is_zipfile(file):
        raise BadInputError("the file is not a TorchScript or torch.export archive",
                            hint="save it with torch.jit.save(torch.jit.script(model), path) or "
                                 "torch.export.save(program, path)")


def commit(folder: Path, upload: Staged, meta: dict[str, Any]) -> Path:
    """Make ``upload`` the live model of ``folder`` with ``meta`` as its spec.json; returns the live file."""
    live = folder / f"model-{upload.digest[:16]}{upload.path.suffix}"
    os.replace(upload.path, live)
    _write_atomically(folder / "spec.json", json.dumps({**meta, "file": live.name}).encode())
    return live


def prune(folder: Path) -> None:
    """Remove the files of versions that spec.json no longer names (it, not the caller, says which is live:
    another upload of the same name may have committed since)."""
    live = json.loads((folder / "spec.json").read_text())["file"]
    for old in folder.glob("model*"):
        if old.name != live:
            old.unlink(missing_ok=True)


def _write_atomically(target: Path, data: bytes) -> None:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".spec-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
