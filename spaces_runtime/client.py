"""Client for the model runner, imported by apps inside their own small environments.

This is the import path apps use; the code lives in ``spaces_runtime.appkit`` (wire format, clients, pipeline).
Needs only the standard library and numpy (both Gradio and Streamlit bring numpy); it imports nothing from
spaces_runtime except the stdlib-only ``errors`` and ``appkit``. It reads its address from the environment:
SPACES_RUNNER_URL (``unix:///path/runner.sock`` or ``http://host:port``), SPACES_RUNNER_TOKEN and SPACES_APP_ID.

    from spaces_runtime.client import Runner, pipeline
    vectors = Runner().model("minilm").predict(["a sentence", "another"])   # float32 (2, 384)
    embed = pipeline("feature-extraction", model="minilm")

Transport: over the Unix socket each request and response is one frame on a kept-alive connection; over TCP it
is plain HTTP/1.1 with the same bodies (see ``appkit.wire``). Every request carries the app's token.
"""

from __future__ import annotations

from spaces_runtime.appkit.address import Address
from spaces_runtime.appkit.aio import AsyncModel, AsyncRunner
from spaces_runtime.appkit.pipeline import DEFAULT_MODELS, pipeline
from spaces_runtime.appkit.sync import Model, Runner
from spaces_runtime.appkit.wire import ERRORS, RunnerAuthError, RunnerForbiddenError, decode, encode, error_from
from spaces_runtime.errors import (
    BadInputError,
    BusyError,
    DeadlineExceededError,
    PayloadTooLargeError,
    QuotaExceededError,
    RunnerError,
    UnknownModelError,
    WorkerDiedError,
)

__all__ = [
    "DEFAULT_MODELS", "ERRORS", "Address", "AsyncModel", "AsyncRunner", "BadInputError", "BusyError",
    "DeadlineExceededError", "Model", "PayloadTooLargeError", "QuotaExceededError", "Runner", "RunnerAuthError",
    "RunnerError", "RunnerForbiddenError", "UnknownModelError", "WorkerDiedError", "decode", "encode",
    "error_from", "pipeline",
]
