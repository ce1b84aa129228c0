"""Client for the model runner, imported by apps inside their own small environments.

Needs only the standard library and numpy (both Gradio and Streamlit bring numpy); it imports nothing from
spaces_runtime except the stdlib-only ``errors``. It is the edge of an app process, so it reads its address
from the environment: SPACES_RUNNER_URL (``unix:///path/runner.sock`` or ``http://host:port``),
SPACES_RUNNER_TOKEN and SPACES_APP_ID.

    from spaces_runtime.client import Runner, pipeline
    vectors = Runner().model("minilm").predict(["a sentence", "another"])   # float32 (2, 384)
    embed = pipeline("feature-extraction", model="minilm")

Message format (both directions): b"SPR1", a u32 header length, a JSON header, then raw array/bytes parts.
Transport: over the Unix socket each request and response is one frame (b"SPF1", u32 head length, u32 body
length, a small JSON head with method/path/headers or status, then the body) on a kept-alive connection;
over TCP it is plain HTTP/1.1 with the same bodies. Every request carries the app's token.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from spaces_runtime.errors import (
    AuthError,
    BadInputError,
    BusyError,
    DeadlineExceededError,
    ForbiddenError,
    PayloadTooLargeError,
    QuotaExceededError,
    RunnerError,
    UnknownModelError,
    WorkerDiedError,
)

MAGIC = b"SPR1"
FRAME = struct.Struct("<4sII")  # b"SPF1", head length, body length
FRAME_MAGIC = b"SPF1"
CONTENT_TYPE = "application/x-spaces-runner"
ALLOWED_DTYPES = frozenset({"|b1", "|u1", "|i1", "<i2", "<i4", "<i8", "<u2", "<f2", "<f4", "<f8"})


class RunnerAuthError(RunnerError, AuthError):
    """The runner refused the caller's identity: no token, or one it did not sign."""

    http_status = 401
    code = "unauthorized"


class RunnerForbiddenError(RunnerError, ForbiddenError):
    """The runner knows the caller, who may not do this (another app's model, an admin-only action)."""

    http_status = 403
    code = "forbidden"


ERRORS: dict[str, type[RunnerError]] = {cls.code: cls for cls in (
    UnknownModelError, BadInputError, PayloadTooLargeError, BusyError, QuotaExceededError,
    DeadlineExceededError, WorkerDiedError, RunnerAuthError, RunnerForbiddenError)}
Parts = Mapping[str, "np.ndarray | bytes"]


# --- wire format ----------------------------------------------------------------------------------------
def encode(meta: Mapping[str, Any], parts: Parts | None = None) -> bytes:
    """One message: JSON ``meta`` plus named numpy arrays or bytes sent raw (no float lists in JSON)."""
    return b"".join(encode_buffers(meta, parts))


def encode_buffers(meta: Mapping[str, Any], parts: Parts | None = None) -> list[bytes | memoryview]:
    """:func:`encode` as a list of buffers, so big arrays go to the socket without being copied first."""
    described, buffers, offset = [], [], 0
    for name, value in (parts or {}).items():
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
            arr = arr.astype(dtype, copy=False)
            buf = arr.data.cast("B") if arr.nbytes else memoryview(b"")
            described.append({"name": name, "kind": "ndarray", "dtype": arr.dtype.str,
                              "shape": list(arr.shape), "offset": offset, "nbytes": arr.nbytes})
        else:
            buf = memoryview(bytes(value))
            described.append({"name": name, "kind": "bytes", "offset": offset, "nbytes": len(buf)})
        buffers.append(buf)
        offset += len(buf)
    header = json.dumps({"meta": dict(meta), "parts": described}, separators=(",", ":")).encode()
    return [MAGIC + struct.pack("<I", len(header)) + header, *buffers]


def decode(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray | bytes]]:
    """Inverse of :func:`encode`; arrays are read-only views of ``data``. Malformed input: BadInputError."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise BadInputError("the request body is not a runner message (it must start with b'SPR1')",
                            hint="send it with spaces_runtime.client")
    (hlen,) = struct.unpack_from("<I", data, 4)
    try:
        header = json.loads(data[8:8 + hlen])
    except ValueError as exc:
        raise BadInputError(f"the message header is not JSON: {exc}") from None
    base, parts = 8 + hlen, {}
    for p in header.get("parts", []):
        start, nbytes = base + int(p["offset"]), int(p["nbytes"])
        if start + nbytes > len(data):
            raise BadInputError(f"part '{p['name']}' runs past the end of the message")
        parts[p["name"]] = _part(p, data, start, nbytes)
    return header.get("meta", {}), parts


def _part(p: dict[str, Any], data: bytes, start: int, nbytes: int) -> np.ndarray | bytes:
    if p["kind"] == "bytes":
        return data[start:start + nbytes]
    if p["dtype"] not in ALLOWED_DTYPES:
        raise BadInputError(f"part '{p['name']}' has dtype {p['dtype']!r}, which the runner does not take",
                            hint="send bool, integer or float arrays")
    dtype, shape = np.dtype(p["dtype"]), tuple(int(s) for s in p["shape"])
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
        raise BadInputError(f"part '{p['name']}': shape {shape} of {dtype} does not match {nbytes} bytes")
    return np.frombuffer(data, dtype=dtype, count=nbytes // dtype.itemsize, offset=start).reshape(shape)


def error_from(status: int, body: bytes) -> RunnerError:
    """The typed error a runner response stands for, from its JSON ``{"error": {"code", ...}}``."""
    try:
        err = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return RunnerError(f"runner answered HTTP {status}: {body[:200]!r}")
    cls = ERRORS.get(err.get("code"), RunnerError)
    if cls in (BusyError, QuotaExceededError):
        return cls(err.get("message", ""), retry_after_s=float(err.get("retry_after_s", 1.0)),
                   hint=err.get("hint"))
    return cls(err.get("message", ""), hint=err.get("hint"))


def _request_body(inputs: Any, params: Mapping[str, Any]) -> list[bytes | memoryview]:
    if isinstance(inputs, bytearray | memoryview):
        inputs = bytes(inputs)
    if isinstance(inputs, np.ndarray | bytes):
        return encode_buffers({"params": dict(params)}, {"inputs": inputs})
    return encode_buffers({"inputs": inputs, "params": dict(params)})


Body = bytes | list[bytes | memoryview]


def frame(head: Mapping[str, Any], body: Body) -> list[bytes | memoryview]:
    """One request or response on the Unix socket: prefix, JSON head, body buffers."""
    pieces = [body] if isinstance(body, bytes) else body
    raw = json.dumps(head, separators=(",", ":")).encode()
    size = sum(len(b) if isinstance(b, bytes) else b.nbytes for b in pieces)
    return [FRAME.pack(FRAME_MAGIC, len(raw), size) + raw, *pieces]


def _joined(body: Body) -> bytes:
    return body if isinstance(body, bytes) else b"".join(body)


def _result(meta: dict[str, Any], parts: dict[str, Any]) -> Any:
    if "outputs" in parts:
        return parts["outputs"]
    return meta.get("outputs", meta)


# --- addressing -------------------------------------------------------------------------------------------
class Address:
    """Where the runner listens and who is calling, from arguments or the app's environment."""

    def __init__(self, url: str | None = None, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0) -> None:
        self.url = url or os.environ.get("SPACES_RUNNER_URL") or ""
        if not self.url:
            raise RunnerError("no runner address: SPACES_RUNNER_URL is not set",
                              hint="run the app on the platform, or pass url='unix:///path/runner.sock'")
        parsed = urllib.parse.urlsplit(self.url)
        self.unix_path = parsed.path if parsed.scheme == "unix" else None
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout = timeout
        self.headers = {"content-type": CONTENT_TYPE}
        token = token if token is not None else os.environ.get("SPACES_RUNNER_TOKEN")
        # the app id is only what the app calls itself; the runner takes the identity from the signed token
        self.app_id = app_id if app_id is not None else os.environ.get("SPACES_APP_ID")
        if token:
            self.headers["authorization"] = f"Bearer {token}"


def _unreachable(address: Address, exc: OSError) -> RunnerError:
    return RunnerError(f"no model runner answers at {address.url}: {exc.strerror or exc}",
                       hint="start the platform with its runner enabled (`spaces serve`), or `spaces runner`")


class _FrameConnection:
    """A kept-alive Unix socket speaking frames: one syscall out for small requests, buffered reads in."""

    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.reader = self.sock.makefile("rb", buffering=1 << 16)

    def roundtrip(self, method: str, path: str, body: Body, headers: Mapping[str, str]) -> tuple[int, bytes]:
        pieces = frame({"m": method, "p": path, "h": dict(headers)}, body)
        if sum(len(p) for p in pieces) <= 1 << 16:
            self.sock.sendall(b"".join(pieces))  # one write: one wakeup of the runner
        else:
            for piece in pieces:
                self.sock.sendall(piece)
        prefix = self.reader.read(FRAME.size)
        if len(prefix) < FRAME.size:
            raise ConnectionError("the runner closed the connection")
        magic, hlen, blen = FRAME.unpack(prefix)
        if magic != FRAME_MAGIC:
            raise RunnerError(f"the runner answered {magic!r}, not a frame", hint="is SPACES_RUNNER_URL a runner?")
        rest = self.reader.read(hlen + blen)
        if len(rest) < hlen + blen:
            raise ConnectionError("the runner closed the connection mid-answer")
        return int(json.loads(rest[:hlen])["s"]), rest[hlen:]

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


# --- sync ---------------------------------------------------------------------------------------------------
class Runner:
    """Synchronous client; one kept-alive connection per thread (Gradio calls handlers from threads)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0) -> None:
        self.address = Address(url, token, app_id, timeout)
        self._local = threading.local()

    def model(self, name: str) -> Model:
        return Model(self, name)

    def request(self, method: str, path: str, body: Body = b"", headers: Mapping[str, str] | None = None
                ) -> bytes:
        all_headers = {**self.address.headers, **(headers or {})}
        for attempt in (0, 1):
            conn, reused = self._connection()
            try:
                status, data = self._send(conn, method, path, body, all_headers)
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError, FileNotFoundError):
                self._local.conn = None
                conn.close()
                if attempt or not reused:  # a stale kept-alive connection is retried once, nothing else
                    raise
                continue
            except BaseException:
                self._local.conn = None  # a timeout mid-answer leaves the stream out of step
                conn.close()
                raise
            if status >= 400:
                raise error_from(status, data)
            return data
        raise AssertionError("unreachable")

    @staticmethod
    def _send(conn: _FrameConnection | http.client.HTTPConnection, method: str, path: str, body: Body,
              headers: Mapping[str, str]) -> tuple[int, bytes]:
        if isinstance(conn, _FrameConnection):
            return conn.roundtrip(method, path, body, headers)
        conn.request(method, path, body=_joined(body), headers=dict(headers))
        resp = conn.getresponse()
        return resp.status, resp.read()

    def _connection(self) -> tuple[_FrameConnection | http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        a = self.address
        try:
            conn = (_FrameConnection(a.unix_path, a.timeout) if a.unix_path
                    else http.client.HTTPConnection(a.host, a.port, timeout=a.timeout))
        except OSError as exc:
            raise _unreachable(a, exc) from None
        self._local.conn = conn
        return conn, False

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else b""
        return json.loads(self.request(method, path, body, {"content-type": "application/json"}) or b"null")

    def models(self) -> list[dict[str, Any]]:
        return self.json("GET", "/v1/models")["models"]

    def info(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/v1/models/{_q(name)}")

    def load(self, name: str, *, pin: bool = False) -> dict[str, Any]:
        return self.json("POST", f"/v1/models/{_q(name)}/load", {"pin": pin})

    def unload(self, name: str) -> dict[str, Any]:
        return self.json("POST", f"/v1/models/{_q(name)}/unload", {})

    def register(self, name: str, file: str | os.PathLike[str] | bytes, *, task: str = "tensor",
                 input_shape: list[int] | None = None, input_dtype: str = "float32",
                 labels: list[str] | None = None, fmt: str | None = None) -> dict[str, Any]:
        """Upload a TorchScript (``.pt``) or torch.export (``.pt2``, saved by ``torch.export.save``) file; any
        app can then use ``name``. ``fmt`` ("torchscript" or "export") is taken from the suffix unless given."""
        data = file if isinstance(file, bytes) else open(file, "rb").read()  # noqa: SIM115
        fmt = fmt or ("export" if not isinstance(file, bytes) and str(file).endswith(".pt2") else "torchscript")
        meta = {"task": task, "format": fmt, "input_shape": input_shape, "input_dtype": input_dtype,
                "labels": labels or []}
        return json.loads(self.request("PUT", f"/v1/models/{_q(name)}", encode(meta, {"file": data})))

    def metrics(self) -> dict[str, Any]:
        return self.json("GET", "/v1/metrics")

    def metrics_text(self) -> str:
        return self.request("GET", "/metrics").decode()

    def status(self) -> dict[str, Any]:
        return self.json("GET", "/v1/status")


class Model:
    def __init__(self, runner: Runner, name: str) -> None:
        self.runner, self.name = runner, name

    def predict(self, inputs: Any, *, deadline_s: float | None = None, **params: Any) -> Any:
        """Texts, an array or audio bytes in; an array (or JSON for VAD) out. Raises RunnerError subclasses."""
        headers = {"x-spaces-deadline-ms": str(int(deadline_s * 1000))} if deadline_s else None
        data = self.runner.request("POST", f"/v1/models/{_q(self.name)}/predict",
                                   _request_body(inputs, params), headers)
        return _result(*decode(data))


# --- async --------------------------------------------------------------------------------------------------
class AsyncRunner:
    """asyncio client speaking HTTP/1.1 over kept-alive streams (no extra dependency)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0) -> None:
        self.address = Address(url, token, app_id, timeout)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def model(self, name: str) -> AsyncModel:
        return AsyncModel(self, name)

    async def request(self, method: str, path: str, body: Body = b"",
                      headers: Mapping[str, str] | None = None) -> bytes:
        roundtrip = _frame_roundtrip if self.address.unix_path else _http_roundtrip
        all_headers = {**self.address.headers, **(headers or {})}
        for attempt in (0, 1):
            reused = bool(self._idle)
            reader, writer = self._idle.pop() if reused else await self._open()
            try:
                status, keep, data = await asyncio.wait_for(
                    roundtrip(reader, writer, method, path, body, all_headers), self.address.timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if attempt or not reused:
                    raise
                continue
            except BaseException:
                writer.close()  # timed out or cancelled mid-answer: the stream is out of step
                raise
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            if status >= 400:
                raise error_from(status, data)
            return data
        raise AssertionError("unreachable")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        a = self.address
        try:
            if a.unix_path:
                return await asyncio.open_unix_connection(a.unix_path, limit=2**24)
            return await asyncio.open_connection(a.host, a.port, limit=2**24)
        except OSError as exc:
            raise _unreachable(a, exc) from None

    async def models(self) -> list[dict[str, Any]]:
        return json.loads(await self.request("GET", "/v1/models"))["models"]

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _frame_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                           body: Body, headers: Mapping[str, str]) -> tuple[int, bool, bytes]:
    writer.writelines(frame({"m": method, "p": path, "h": dict(headers)}, body))
    await writer.drain()
    magic, hlen, blen = FRAME.unpack(await reader.readexactly(FRAME.size))
    if magic != FRAME_MAGIC:
        raise RunnerError(f"the runner answered {magic!r}, not a frame", hint="is SPACES_RUNNER_URL a runner?")
    rest = await reader.readexactly(hlen + blen)
    return int(json.loads(rest[:hlen])["s"]), True, rest[hlen:]


async def _http_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                          body: Body, headers: Mapping[str, str]) -> tuple[int, bool, bytes]:
    data = _joined(body)
    head = [f"{method} {path} HTTP/1.1", "Host: runner", f"Content-Length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    status_line = await reader.readuntil(b"\r\n")
    if not status_line:
        raise ConnectionError("runner closed the connection")
    status = int(status_line.split()[1])
    length, keep = 0, True
    raw = await reader.readuntil(b"\r\n\r\n")
    for line in raw.decode("latin-1").split("\r\n"):
        key, _, value = line.partition(":")
        if key.lower() == "content-length":
            length = int(value)
        elif key.lower() == "connection" and value.strip().lower() == "close":
            keep = False
    return status, keep, await reader.readexactly(length)


class AsyncModel:
    def __init__(self, runner: AsyncRunner, name: str) -> None:
        self.runner, self.name = runner, name

    async def predict(self, inputs: Any, *, deadline_s: float | None = None, **params: Any) -> Any:
        headers = {"x-spaces-deadline-ms": str(int(deadline_s * 1000))} if deadline_s else None
        data = await self.runner.request("POST", f"/v1/models/{_q(self.name)}/predict",
                                         _request_body(inputs, params), headers)
        return _result(*decode(data))


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


# --- pipeline ---------------------------------------------------------------------------------------------
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
