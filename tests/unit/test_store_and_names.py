from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.errors import InvalidNameError, NotFoundError, StageTransitionError
from spaces_runtime.names import space_id, split_id
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store


@pytest.mark.parametrize("bad", ["", "UPPER", "-dash", "a b", "a/b", "x" * 97, "dots..", "end.", "é"])
def test_bad_names_say_what_is_allowed(bad: str) -> None:
    with pytest.raises(InvalidNameError, match="not allowed"):
        space_id("alice", bad)


def test_reserved_owner_is_refused() -> None:
    with pytest.raises(InvalidNameError, match="reserved"):
        space_id("api", "demo")


def test_split_id_needs_owner_and_name() -> None:
    assert split_id("alice/demo") == ("alice", "demo")
    with pytest.raises(InvalidNameError, match="OWNER/NAME"):
        split_id("demo")


def test_store_keeps_stage_history_and_guards_transitions(tmp_path: Path) -> None:
    store = Store(tmp_path / "spaces.db")
    store.create_or_touch("alice/demo", Stage.BUILDING, "deploy")
    store.set_stage("alice/demo", Stage.APP_STARTING, "built")
    store.set_stage("alice/demo", Stage.RUNNING, "ready")
    store.set_stage("alice/demo", Stage.PAUSED, "paused by request")
    with pytest.raises(StageTransitionError, match="PAUSED cannot change to RUNTIME_ERROR"):
        store.set_stage("alice/demo", Stage.RUNTIME_ERROR, "a paused app cannot crash")
    assert [e.stage for e in store.events("alice/demo")] == [Stage.BUILDING, Stage.APP_STARTING, Stage.RUNNING,
                                                             Stage.PAUSED]
    # a second connection to the same file (WAL) sees the same state: the store is the source of truth
    assert Store(tmp_path / "spaces.db").get("alice/demo").stage == Stage.PAUSED


def test_likes_count_once_per_liker(tmp_path: Path) -> None:
    store = Store(tmp_path / "spaces.db")
    store.create_or_touch("alice/demo", Stage.BUILDING, "deploy")
    assert store.set_like("alice/demo", "browser-1", True) == 1
    assert store.set_like("alice/demo", "browser-1", True) == 1
    assert store.set_like("alice/demo", "browser-2", True) == 2
    assert store.set_like("alice/demo", "browser-1", False) == 1
    store.record_visit("alice/demo")
    record = store.get("alice/demo")
    assert (record.likes, record.visits) == (1, 1)
    assert record.trending_score == 1 * 5 + 1


def test_unknown_space_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no space named bob/x"):
        Store(tmp_path / "spaces.db").get("bob/x")
