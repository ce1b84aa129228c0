"""Model handlers: how each model format loads onto the device and runs a batch. Runs only in the worker.

A handler's ``run`` takes the validated payloads of several requests and returns one result per request:
``(meta, parts)`` for the wire, or a RunnerError for that request alone.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import numpy as np
import torch

from spaces_runtime.errors import BadInputError, RunnerError

Result = tuple[dict[str, Any], dict[str, Any]] | RunnerError


class Handler(Protocol):
    nbytes: int

    def run(self, payloads: list[dict[str, Any]]) -> list[Result]: ...


def module_bytes(module: Any) -> int:
    """Parameters and buffers: what the model keeps resident, the same on CPU and GPU."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


class MiniLM:
    """all-MiniLM-L6-v2 as sentence-transformers computes it: mean pooling over tokens, then L2 norm."""

    def __init__(self, path: str, device: torch.device) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.nbytes = module_bytes(self.model)

    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()

    def run(self, payloads: list[dict[str, Any]]) -> list[Result]:
        texts = [t for p in payloads for t in p["texts"]]
        vectors = self.embed(texts)
        results: list[Result] = []
        start = 0
        for p in payloads:
            n = len(p["texts"])
            results.append(({}, {"outputs": vectors[start:start + n]}))
            start += n
        return results


class SileroVAD:
    """Silero VAD from its TorchScript file; audio files decoded with soundfile and resampled with numpy."""

    def __init__(self, path: str, device: torch.device) -> None:
        threads = torch.get_num_threads()
        from silero_vad.utils_vad import get_speech_timestamps  # its package sets 1 thread on import

        torch.set_num_threads(threads)
        self.timestamps = get_speech_timestamps
        self.model = torch.jit.load(path, map_location="cpu").eval()  # a stateful RNN: small, stays on CPU
        self.nbytes = module_bytes(self.model)

    def run(self, payloads: list[dict[str, Any]]) -> list[Result]:
        return [self._one(p) for p in payloads]

    def _one(self, p: dict[str, Any]) -> Result:
        params = p.get("params") or {}
        try:
            samples, rate = (read_audio(p["audio_file"]) if "audio_file" in p
                             else (p["samples"], int(params.get("sampling_rate", 16000))))
        except RunnerError as exc:
            return exc
        threshold = float(params.get("threshold", 0.5))
        with torch.inference_mode():
            self.model.reset_states()
            stamps = self.timestamps(torch.from_numpy(np.array(samples, dtype=np.float32)), self.model,
                                     threshold=threshold, sampling_rate=rate, return_seconds=True)
        segments = [{"start": float(s["start"]), "end": float(s["end"])} for s in stamps]
        duration = len(samples) / rate
        speech = sum(s["end"] - s["start"] for s in segments)
        return {"outputs": {"segments": segments, "duration_s": round(duration, 3),
                            "speech_s": round(speech, 3), "sampling_rate": rate}}, {}


def read_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float32 at 16 kHz (8 kHz kept) from WAV/FLAC/OGG bytes."""
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError and RuntimeError
        raise BadInputError(f"could not read the audio file: {exc}",
                            hint="send WAV, FLAC or OGG bytes") from None
    mono = samples.mean(axis=1)
    if rate in (8000, 16000):
        return mono, rate
    n = int(len(mono) * 16000 / rate)
    positions = np.arange(n) * (rate / 16000)
    return np.interp(positions, np.arange(len(mono)), mono).astype(np.float32), 16000


class TensorModel:
    """A TorchScript or torch.export file uploaded by an app: deserialised, never executed as app Python."""

    def __init__(self, path: str, fmt: str, task: str, device: torch.device) -> None:
        self.device, self.task = device, task
        if fmt == "export":
            self.model = torch.export.load(path).module().to(device)
        else:
            self.model = torch.jit.load(path, map_location=device).eval()
        self.nbytes = module_bytes(self.model)

    def run(self, payloads: list[dict[str, Any]]) -> list[Result]:
        arrays = [p["array"] for p in payloads]
        try:
            with torch.inference_mode():
                out = self.model(torch.from_numpy(np.concatenate(arrays)).to(self.device))
                if self.task == "image-classification":
                    out = torch.softmax(out.float(), dim=-1)
                outputs = out.cpu().numpy()
        except Exception as exc:  # the model's own check of its input: the caller's error, not ours
            return [BadInputError(f"the model rejected its input: {str(exc).splitlines()[0][:300]}")] * len(arrays)
        results: list[Result] = []
        start = 0
        for a in arrays:
            results.append(({}, {"outputs": outputs[start:start + len(a)]}))
            start += len(a)
        return results


def load(spec: dict[str, Any], device: torch.device) -> Handler:
    fmt = spec["format"]
    if fmt == "minilm":
        return MiniLM(spec["path"], device)
    if fmt == "silero-vad":
        return SileroVAD(spec["path"], device)
    return TensorModel(spec["path"], fmt, spec["task"], device)
