"""Space uids across the platforms of one host: the host's registry (real SQLite files in a temp folder)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spaces_runtime.sandbox.identity import HostRegistry, Identities

BASE, COUNT = 300_000, 1000


def _platform(root: Path, name: str, registry: Path) -> Identities:
    data = root / name
    data.mkdir(exist_ok=True)
    return Identities(data / "spaces.db", HostRegistry(registry, BASE, COUNT), data)


def test_two_platforms_never_hand_out_one_uid(tmp_path: Path) -> None:
    registry = tmp_path / "host" / "uids.db"
    production, staging = _platform(tmp_path, "prod", registry), _platform(tmp_path, "staging", registry)
    first = production.uid_for("alice/demo")
    assert staging.uid_for("alice/demo") != first  # the same space name on two platforms: two identities
    assert len({production.uid_for("bob/a"), staging.uid_for("bob/b"), first, staging.uid_for("alice/demo")}) == 4
    assert production.uid_for("alice/demo") == first  # and each keeps its own


def test_a_data_dir_from_before_the_registry_keeps_its_uids_unless_another_platform_holds_one(tmp_path: Path) -> None:
    registry = tmp_path / "uids.db"
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "spaces.db") as db:  # allocated from the same base, before the registry
        db.execute("CREATE TABLE sandbox_identities (space_id TEXT PRIMARY KEY, uid INTEGER NOT NULL UNIQUE, "
                   "created_at REAL NOT NULL)")
        db.executemany("INSERT INTO sandbox_identities VALUES (?, ?, 0)", [("alice/a", BASE), ("alice/b", BASE + 1)])
    other = _platform(tmp_path, "other", registry)
    taken = other.uid_for("carol/x")  # BASE: the other platform started first
    assert taken == BASE
    upgraded = Identities(old / "spaces.db", HostRegistry(registry, BASE, COUNT), old)
    assert upgraded.uid_for("alice/b") == BASE + 1  # nobody else had it
    moved = upgraded.uid_for("alice/a")
    assert moved not in (BASE, BASE + 1), "alice/a kept a uid another platform's app runs as"
    assert other.uid_for("carol/x") == BASE


def test_the_uids_of_a_removed_data_dir_are_forgotten(tmp_path: Path) -> None:
    registry = tmp_path / "uids.db"
    gone = _platform(tmp_path, "gone", registry)
    gone.uid_for("alice/a")
    gone.close()
    (tmp_path / "gone" / "spaces.db").unlink()
    (tmp_path / "gone").rmdir()
    HostRegistry(registry, BASE, COUNT).close()
    with sqlite3.connect(registry) as db:
        assert db.execute("SELECT COUNT(*) FROM uids").fetchone()[0] == 0
