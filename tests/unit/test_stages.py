"""The stage guard: every pair of stages is either a path the platform takes (listed here with why) or refused."""

from __future__ import annotations

import itertools

import pytest

from spaces_runtime.errors import StageTransitionError
from spaces_runtime.stages import SERVING_STAGES, Stage, check_transition

S = Stage
FAILED = {S.BUILD_ERROR, S.CONFIG_ERROR, S.NO_APP_FILE, S.RUNTIME_ERROR}
# Written out from the user's side, independently of the table in stages.py.
EXPECTED: dict[Stage, set[Stage]] = {
    S.BUILDING: {S.APP_STARTING, S.RUNNING, S.STOPPED} | FAILED,
    S.RUNNING_BUILDING: {S.RUNNING_APP_STARTING, S.RUNNING, S.STOPPED, S.APP_STARTING} | FAILED,
    S.APP_STARTING: {S.RUNNING, S.RUNTIME_ERROR, S.STOPPED},
    S.RUNNING_APP_STARTING: {S.RUNNING, S.RUNTIME_ERROR, S.APP_STARTING, S.STOPPED},
    S.RUNNING: {S.APP_STARTING, S.RUNTIME_ERROR, S.SLEEPING, S.STOPPED},
    S.RUNTIME_ERROR: {S.APP_STARTING, S.STOPPED},
    S.SLEEPING: {S.APP_STARTING, S.STOPPED},
    S.STOPPED: {S.APP_STARTING, S.RUNNING},
    S.PAUSED: set(), S.BUILD_ERROR: set(), S.CONFIG_ERROR: set(), S.NO_APP_FILE: set(),
}


def expected(current: Stage) -> set[Stage]:
    if current is S.DELETING:
        return set()
    everywhere = {S.BUILDING, S.PAUSED, S.DELETING, current}
    return EXPECTED[current] | everywhere | ({S.RUNNING_BUILDING} if current in SERVING_STAGES else set())


@pytest.mark.parametrize(("current", "new"), list(itertools.product(Stage, Stage)))
def test_every_pair_of_stages_is_allowed_or_refused_as_written(current: Stage, new: Stage) -> None:
    if new in expected(current):
        assert check_transition(current, new) is new
    else:
        with pytest.raises(StageTransitionError, match=f"{current} cannot change to {new}"):
            check_transition(current, new)


@pytest.mark.parametrize(("current", "new"), [
    (S.PAUSED, S.RUNTIME_ERROR),  # a crash reported after a pause must not undo the pause
    (S.PAUSED, S.RUNNING),  # nor a late "ready"
    (S.DELETING, S.RUNNING),
    (S.BUILD_ERROR, S.RUNNING_APP_STARTING),  # nothing serves after a failed first build
    (S.SLEEPING, S.RUNNING_BUILDING),  # a sleeping app serves nothing: its redeploy is a plain build
    (S.APP_STARTING, S.SLEEPING),  # only an app that served can fall idle
    (S.STOPPED, S.RUNTIME_ERROR),
])
def test_changes_that_would_mislead_a_user_are_refused(current: Stage, new: Stage) -> None:
    with pytest.raises(StageTransitionError):
        check_transition(current, new)


def test_a_new_space_may_start_anywhere() -> None:
    assert check_transition(None, S.BUILDING) is S.BUILDING
