"""The LFS store on a real SQLite file and folder: the quota checked again when the bytes arrive, and gc's removal
that leaves an object a push just uploaded or named."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from spaces_runtime.hub.lfs import LfsObjects, StorageQuotaError


def upload(store: LfsObjects, space_id: str, content: bytes) -> str:
    fd, scratch = store.open_scratch()
    with open(fd, "wb") as out:
        out.write(content)
    oid = hashlib.sha256(content).hexdigest()
    store.keep(space_id, oid, scratch, oid, len(content))
    return oid


def test_bytes_past_the_quota_are_refused_on_arrival_and_leave_nothing(tmp_path: Path) -> None:
    store = LfsObjects(tmp_path / "lfs", tmp_path / "db.sqlite", max_size=100, quota=10)
    upload(store, "a/b", b"x" * 8)
    with pytest.raises(StorageQuotaError, match="would pass a/b's LFS storage quota"):
        upload(store, "a/b", b"y" * 3)
    assert store.usage("a/b") == 8 and list((tmp_path / "lfs" / "tmp").iterdir()) == []
    upload(store, "c/d", b"x" * 8)  # the same object for another space: stored once, counted for each
    assert store.usage("c/d") == 8 and len(store.stored()) == 1


def test_gc_removal_leaves_an_object_uploaded_or_named_since_its_grace_period_began(tmp_path: Path) -> None:
    store = LfsObjects(tmp_path / "lfs", tmp_path / "db.sqlite", max_size=100, quota=100)
    oid = upload(store, "a/b", b"picture")
    assert store.remove(oid, before=time.time() - 3600) == -1  # just uploaded: a push may reference it next
    assert store.path(oid).is_file()
    assert store.remove(oid, before=time.time() + 1) == len(b"picture")
    assert not store.path(oid).exists() and store.usage("a/b") == 0
    again = upload(store, "a/b", b"again")
    with store._lock:  # an old upload, as a day later
        store._db.execute("UPDATE lfs_objects SET at = 0")
    os.utime(store.path(again), (0, 0))
    assert store.stored()[0].last_used == 0
    store.touch("a/b", {again})  # a push's batch names it (held: git-lfs skips the upload)
    assert store.remove(again, before=time.time() - 3600) == -1
