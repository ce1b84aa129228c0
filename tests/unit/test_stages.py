from __future__ import annotations

import pytest

from spaces_runtime.errors import StageTransitionError
from spaces_runtime.stages import Stage, check_transition


@pytest.mark.parametrize(("current", "new"), [
    # a newer upload arrives while the previous new version is still starting beside the serving one
    (Stage.RUNNING_APP_STARTING, Stage.RUNNING_BUILDING),
    # ...and that upload turns out broken: the space must show it, not stay "restarting" forever
    (Stage.RUNNING_APP_STARTING, Stage.CONFIG_ERROR),
    (Stage.RUNNING_APP_STARTING, Stage.BUILD_ERROR),
    (Stage.RUNNING, Stage.BUILD_ERROR),
    (Stage.APP_STARTING, Stage.BUILD_ERROR),
    (Stage.SLEEPING, Stage.APP_STARTING),
])
def test_redeploy_paths_are_allowed(current: Stage, new: Stage) -> None:
    assert check_transition(current, new) is new


@pytest.mark.parametrize(("current", "new"), [
    (Stage.PAUSED, Stage.RUNTIME_ERROR),
    (Stage.DELETING, Stage.RUNNING),
    (Stage.BUILD_ERROR, Stage.RUNNING_APP_STARTING),
])
def test_impossible_changes_are_refused(current: Stage, new: Stage) -> None:
    with pytest.raises(StageTransitionError, match=f"{current} cannot change to {new}"):
        check_transition(current, new)
