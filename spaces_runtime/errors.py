"""One error tree rooted at SpacesError.

Library code raises these; the CLI and HTTP edges choose exit codes and status codes (``http_status``).
A message says what was found and what to write instead.
"""

from __future__ import annotations

import os


class SpacesWarning(UserWarning):
    """Root of the platform's own Python warnings; the test suite turns every one into an error."""


class SpacesError(Exception):
    """Root of every error the platform raises on purpose."""

    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# --- app folder and spec -------------------------------------------------------------------------------
class SpecError(SpacesError):
    """The app folder's README front matter or files are wrong: stage CONFIG_ERROR."""

    http_status = 422

    def __init__(self, message: str, *, file: str = "README.md", line: int | None = None,
                 hint: str | None = None) -> None:
        where = f"{file} line {line}" if line else file
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line


class NoAppFileError(SpecError):
    """The app file named (or defaulted) is not in the folder: stage NO_APP_FILE."""


# --- uploads and names ---------------------------------------------------------------------------------
class InvalidNameError(SpacesError):
    http_status = 400


class UploadError(SpacesError):
    """A hostile or broken upload; nothing of it was written outside a scratch folder."""

    http_status = 400


class UploadTooLargeError(UploadError):
    http_status = 413


class DiskFullError(SpacesError):
    """The platform's own disk is full: 507, and nothing half-written stays."""

    http_status = 507

    @classmethod
    def at(cls, folder: os.PathLike[str] | str) -> DiskFullError:
        import shutil

        try:
            free = f"{shutil.disk_usage(folder).free // (1024 * 1024)} MiB free"
        except OSError:
            free = "no space left"
        return cls(f"the platform's disk is full ({free} in {folder})",
                   hint="free space on the platform's data disk (spaces gc) and try again")


# --- builds ----------------------------------------------------------------------------------------------
class BuildError(SpacesError):
    """Building the environment or image failed: stage BUILD_ERROR. ``log_tail`` holds the failing output;
    ``summary`` is the message without that output's words, for where the output stands beside it (the build
    log, the stage's error), so that each error shows once; empty: the message."""

    http_status = 500

    def __init__(self, message: str, *, log_tail: str = "", hint: str | None = None, summary: str = "") -> None:
        super().__init__(message, hint=hint)
        self.log_tail = log_tail
        self.summary = summary


class BuildTimeoutError(BuildError):
    """The build ran past SPACES_BUILD_TIMEOUT_S and was stopped: stage BUILD_ERROR."""


# --- platform state --------------------------------------------------------------------------------------
class NotFoundError(SpacesError):
    http_status = 404


class ConflictError(SpacesError):
    http_status = 409


class StageTransitionError(ConflictError):
    """A stage change the state machine does not allow."""


class AuthError(SpacesError):
    http_status = 401
    code = "unauthorized"


class ForbiddenError(SpacesError):
    """The caller is known but may not do this (another app's model, an admin-only action)."""

    http_status = 403
    code = "forbidden"


class AppRuntimeError(SpacesError):
    """An app failed to start or kept crashing: stage RUNTIME_ERROR."""


class BackendError(SpacesError):
    """A runtime backend (process or docker) could not do what it was asked."""


class NodeUnavailableError(BackendError):
    """The app cannot start now for a reason outside it that passes by itself: the swarm node that holds its
    /data is down or drained. The supervisor tries again with backoff, for as long as it takes."""


class ServerUnreachableError(SpacesError):
    """The CLI could not reach `spaces serve`."""


# --- model runner ----------------------------------------------------------------------------------------
class RunnerError(SpacesError):
    """Root of the model runner's errors; the client re-raises them by ``code``."""

    code = "runner_error"


class UnknownModelError(RunnerError):
    http_status = 404
    code = "unknown_model"


class BadInputError(RunnerError):
    http_status = 400
    code = "bad_input"


class PayloadTooLargeError(RunnerError):
    http_status = 413
    code = "payload_too_large"


class BusyError(RunnerError):
    http_status = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class QuotaExceededError(RunnerError):
    http_status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s  # until the app's window slides enough to let a request in


class DeadlineExceededError(RunnerError):
    http_status = 504
    code = "deadline_exceeded"


class WorkerDiedError(RunnerError):
    http_status = 503
    code = "worker_died"
