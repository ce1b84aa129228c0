"""``pipeline(task, model=...)``: the transformers-style one-liner, served by the runner."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from spaces_runtime.appkit.sync import Model, Runner
from spaces_runtime.errors import BadInputError

DEFAULT_MODELS = {"feature-extraction": "minilm", "voice-activity-detection": "silero-vad"}


def pipeline(task: str, model: str | None = None, *, runner: Runner | None = None) -> Callable[..., Any]:
    """The transformers-style one-liner, served by the runner.

    ``feature-extraction``: texts → float32 (n, dim), normalised. ``voice-activity-detection``: WAV/FLAC bytes,
    a path, or float32 16 kHz samples → ``{"segments": [{"start", "end"}], ...}``. ``image-classification``:
    PIL image or HxWx3 uint8 array → ``[{"label", "score"}]`` best first.
    """
    name = model or DEFAULT_MODELS.get(task)
    if name is None:
        raise BadInputError(f"pipeline '{task}' needs model=...",
                            hint="name a model from `spaces models`, e.g. pipeline(task, model='my-model')")
    handle = (runner or Runner()).model(name)
    if task == "feature-extraction":
        return lambda texts, **kw: handle.predict(texts, **kw)
    if task == "voice-activity-detection":
        return lambda audio, **kw: handle.predict(_audio_input(audio), **kw)
    if task == "image-classification":
        return _ImageClassifier(handle)
    raise BadInputError(f"pipeline task '{task}' is not served by the runner",
                        hint="use feature-extraction, voice-activity-detection or image-classification")


def _audio_input(audio: Any) -> Any:
    if isinstance(audio, str | os.PathLike):
        with open(audio, "rb") as f:
            return f.read()
    if isinstance(audio, np.ndarray):
        return audio.astype(np.float32, copy=False)
    return audio


class _ImageClassifier:
    def __init__(self, handle: Model) -> None:
        self.handle = handle
        info = handle.runner.info(handle.name)
        self.shape = info.get("input_shape") or [3, 32, 32]
        self.labels = info.get("labels") or []

    def __call__(self, image: Any, top_k: int = 5) -> list[dict[str, Any]]:
        probs = self.handle.predict(self.preprocess(image))[0]
        order = np.argsort(-probs)[:top_k]
        return [{"label": self.labels[i] if i < len(self.labels) else str(i), "score": float(probs[i])}
                for i in order]

    def preprocess(self, image: Any) -> np.ndarray:
        """HxWx3 image → float32 (1, 3, H', W') in [0, 1] at the model's size (PIL comes with Gradio/Streamlit)."""
        _, h, w = self.shape
        if not isinstance(image, np.ndarray) or image.shape[:2] != (h, w):
            from PIL import Image

            pil = image if not isinstance(image, np.ndarray) else Image.fromarray(np.asarray(image, np.uint8))
            image = np.asarray(pil.convert("RGB").resize((w, h)))
        arr = np.asarray(image, dtype=np.float32)
        if arr.max() > 1.0:
            arr = arr / 255.0
        return np.ascontiguousarray(arr.transpose(2, 0, 1)[None], dtype=np.float32)
