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
# A (re)deploy may start from anywhere but DELETING; the rest follow the build → start → run path.
_ALLOWED: dict[Stage, frozenset[Stage]] = {
    _S.NO_APP_FILE: frozenset({_S.BUILDING, _S.CONFIG_ERROR, _S.DELETING, _S.PAUSED}),
    _S.CONFIG_ERROR: frozenset({_S.BUILDING, _S.NO_APP_FILE, _S.DELETING, _S.PAUSED}),
    _S.BUILDING: frozenset({_S.APP_STARTING, _S.BUILD_ERROR, _S.CONFIG_ERROR, _S.NO_APP_FILE, _S.BUILDING,
                            _S.RUNNING, _S.DELETING, _S.PAUSED, _S.STOPPED}),
    _S.BUILD_ERROR: frozenset({_S.BUILDING, _S.CONFIG_ERROR, _S.NO_APP_FILE, _S.DELETING, _S.PAUSED}),
    _S.APP_STARTING: frozenset({_S.RUNNING, _S.RUNTIME_ERROR, _S.APP_STARTING, _S.BUILDING, _S.DELETING,
                                _S.PAUSED, _S.STOPPED, _S.CONFIG_ERROR, _S.NO_APP_FILE, _S.BUILD_ERROR,
                                _S.SLEEPING}),
    _S.RUNNING: frozenset({_S.RUNNING_BUILDING, _S.APP_STARTING, _S.RUNTIME_ERROR, _S.SLEEPING, _S.PAUSED,
                           _S.STOPPED, _S.DELETING, _S.BUILDING, _S.CONFIG_ERROR, _S.NO_APP_FILE,
                           _S.RUNNING_APP_STARTING, _S.BUILD_ERROR}),
    _S.RUNNING_BUILDING: frozenset({_S.RUNNING_APP_STARTING, _S.RUNNING, _S.BUILD_ERROR, _S.APP_STARTING,
                                    _S.RUNTIME_ERROR, _S.PAUSED, _S.STOPPED, _S.DELETING, _S.BUILDING,
                                    _S.CONFIG_ERROR, _S.NO_APP_FILE}),
    _S.RUNNING_APP_STARTING: frozenset({_S.RUNNING, _S.RUNTIME_ERROR, _S.PAUSED, _S.STOPPED, _S.DELETING,
                                        _S.BUILDING, _S.APP_STARTING, _S.RUNNING_BUILDING, _S.BUILD_ERROR,
                                        _S.CONFIG_ERROR, _S.NO_APP_FILE}),
    _S.RUNTIME_ERROR: frozenset({_S.BUILDING, _S.APP_STARTING, _S.RUNNING, _S.PAUSED, _S.STOPPED,
                                 _S.DELETING, _S.CONFIG_ERROR, _S.NO_APP_FILE}),
    _S.STOPPED: frozenset({_S.BUILDING, _S.APP_STARTING, _S.PAUSED, _S.DELETING, _S.RUNNING}),
    _S.PAUSED: frozenset({_S.BUILDING, _S.APP_STARTING, _S.DELETING, _S.PAUSED}),
    _S.SLEEPING: frozenset({_S.APP_STARTING, _S.RUNNING, _S.BUILDING, _S.PAUSED, _S.DELETING, _S.STOPPED}),
    _S.DELETING: frozenset(),
}


def check_transition(current: Stage | None, new: Stage) -> Stage:
    """Return ``new`` when ``current → new`` is allowed; raise StageTransitionError otherwise."""
    if current is None or (current == new and new is not Stage.DELETING) or new in _ALLOWED[current]:
        return new
    raise StageTransitionError(f"stage {current} cannot change to {new}")


def is_error(stage: Stage) -> bool:
    return stage in ERROR_STAGES
