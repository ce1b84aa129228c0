"""Hugging Face's SpaceStage names, plus SLEEPING, and the one place that guards transitions."""

from __future__ import annotations

from enum import StrEnum

from spaces_runtime.errors import StageTransitionError


class Stage(StrEnum):
    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    APP_STARTING = "APP_STARTING"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    STOPPED = "STOPPED"
    PAUSED = "PAUSED"
    DELETING = "DELETING"
    SLEEPING = "SLEEPING"


ERROR_STAGES = frozenset({Stage.NO_APP_FILE, Stage.CONFIG_ERROR, Stage.BUILD_ERROR, Stage.RUNTIME_ERROR})
# stages in which an older version of the app still answers its link
SERVING_STAGES = frozenset({Stage.RUNNING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING})

_S = Stage
_BUILD_FAILED = frozenset({_S.BUILD_ERROR, _S.CONFIG_ERROR, _S.NO_APP_FILE, _S.RUNTIME_ERROR})
# Where each stage may go besides the moves open to (almost) every stage, below. Read a row as "from here".
_NEXT: dict[Stage, frozenset[Stage]] = {
    # the build ends in a start, a static site serving (after stopping what ran before), or a failure
    _S.BUILDING: frozenset({_S.APP_STARTING, _S.RUNNING, _S.STOPPED}) | _BUILD_FAILED,
    # ...and while an older version serves, that version may also crash and be restarted
    _S.RUNNING_BUILDING: frozenset({_S.RUNNING_APP_STARTING, _S.RUNNING, _S.STOPPED, _S.APP_STARTING})
    | _BUILD_FAILED,
    _S.APP_STARTING: frozenset({_S.RUNNING, _S.RUNTIME_ERROR, _S.STOPPED}),
    # the new version serves, fails to start, or the old one crashed meanwhile and is restarted
    _S.RUNNING_APP_STARTING: frozenset({_S.RUNNING, _S.RUNTIME_ERROR, _S.APP_STARTING, _S.STOPPED}),
    # a crash or a failed liveness check restarts; an idle app sleeps
    _S.RUNNING: frozenset({_S.APP_STARTING, _S.RUNTIME_ERROR, _S.SLEEPING, _S.STOPPED}),
    _S.RUNTIME_ERROR: frozenset({_S.APP_STARTING, _S.STOPPED}),  # `restart` of a crashed app
    _S.SLEEPING: frozenset({_S.APP_STARTING, _S.STOPPED}),  # a visit wakes it
    _S.STOPPED: frozenset({_S.APP_STARTING, _S.RUNNING}),
    _S.PAUSED: frozenset(),
    _S.BUILD_ERROR: frozenset(),
    _S.CONFIG_ERROR: frozenset(),
    _S.NO_APP_FILE: frozenset(),
    _S.DELETING: frozenset(),
}


def allowed_next(current: Stage) -> frozenset[Stage]:
    """Every stage ``current`` may change to. From anywhere but DELETING: a (re)deploy starts a build (beside the
    serving version when one serves), a pause, a delete."""
    if current is Stage.DELETING:
        return frozenset()
    anywhere = {Stage.BUILDING, Stage.PAUSED, Stage.DELETING}
    if current in SERVING_STAGES:
        anywhere.add(Stage.RUNNING_BUILDING)
    return _NEXT[current] | anywhere


def check_transition(current: Stage | None, new: Stage) -> Stage:
    """Return ``new`` when ``current → new`` is allowed (staying put is, except in DELETING); raise
    StageTransitionError otherwise."""
    if current is None or (current == new and new is not Stage.DELETING) or new in allowed_next(current):
        return new
    raise StageTransitionError(f"stage {current} cannot change to {new}")


def is_error(stage: Stage) -> bool:
    return stage in ERROR_STAGES
