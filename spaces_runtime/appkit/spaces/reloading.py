"""``spaces.reloading``: what Gradio's Spaces reloader imports once the ``spaces`` package metadata says 0.43+.

On Hugging Face this serves dev mode's live code reloads. Here app code changes arrive by a new deploy, so there
is no reload server: the call returns at once and Gradio's watcher thread ends quietly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def start_reload_server(prerun: Callable[[], Any], postrun: Callable[[], bool], stop_event: threading.Event,
                        port: int = 7887) -> None:
    return None
