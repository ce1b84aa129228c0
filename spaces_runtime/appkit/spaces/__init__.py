"""``import spaces`` for apps written for Hugging Face ZeroGPU, served by this platform's runner.

``@spaces.GPU`` / ``@spaces.GPU(duration=60)``: on a GPU host (SPACES_ZERO_GPU=1) each call first takes a
lease from the runner's scheduler (queued, duration-limited, charged to the app's device-second quota) and
returns it afterwards; elsewhere the function is called straight through.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
__all__ = ["GPU", "disable_gradio_auto_wrap", "enable_gradio_auto_wrap", "gradio_auto_wrap", "zero_gpu"]


def zero_gpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU") == "1" and bool(os.environ.get("SPACES_RUNNER_URL"))


def GPU(func: F | None = None, *, duration: float = 60) -> Any:  # the name ZeroGPU apps use
    def decorate(fn: F) -> F:
        if not zero_gpu():
            return fn

        @functools.wraps(fn)
        def leased(*args: Any, **kwargs: Any) -> Any:
            from spaces_runtime.client import Runner

            runner = Runner()
            lease = json.loads(runner.request("POST", "/v1/leases",
                                              json.dumps({"duration_s": float(duration)}).encode()))
            try:
                return fn(*args, **kwargs)
            finally:
                runner.request("DELETE", f"/v1/leases/{lease['lease']}")

        return leased  # type: ignore[return-value]

    return decorate(func) if callable(func) else decorate


# Gradio imports `spaces` whenever it can and, on huggingface.co (SYSTEM=spaces), hands every event handler to
# gradio_auto_wrap. Handlers that need the accelerator are already wrapped by @GPU, so the rest pass unchanged.
# This platform does not set SYSTEM=spaces: in that mode Gradio also adds huggingface.co-only events (a deep-link
# button whose lambda takes the name `/lambda`, so an app's own lambda handler becomes `/lambda_1`), and an app's
# API must be the one its author sees running it directly.
_auto_wrap = True


def gradio_auto_wrap(fn: F) -> F:
    return fn


def disable_gradio_auto_wrap() -> None:
    global _auto_wrap
    _auto_wrap = False


def enable_gradio_auto_wrap() -> None:
    global _auto_wrap
    _auto_wrap = True
