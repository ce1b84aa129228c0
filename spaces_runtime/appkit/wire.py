"""The runner's wire format, spoken by the client here and by ``spaces_runtime.runner`` on the other end.

Message (both directions): b"SPR1", a u32 header length, a JSON header (``{"meta", "parts"}``), then raw
array/bytes parts. Frame (the Unix socket's transport): b"SPF1", u32 head length, u32 body length, a small JSON
head with method/path/headers (``{"m", "p", "h"}``) or status (``{"s"}``), then the body. Errors travel as JSON
``{"error": {"code", "message", "hint"}}`` and come back as the same typed exception. Stdlib and numpy only.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
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
Body = bytes | list[bytes | memoryview]


# --- messages -------------------------------------------------------------------------------------------
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


def request_body(inputs: Any, params: Mapping[str, Any]) -> list[bytes | memoryview]:
    """A predict request: arrays and bytes travel as a raw part, anything else (texts) in the JSON meta."""
    if isinstance(inputs, bytearray | memoryview):
        inputs = bytes(inputs)
    if isinstance(inputs, np.ndarray | bytes):
        return encode_buffers({"params": dict(params)}, {"inputs": inputs})
    return encode_buffers({"inputs": inputs, "params": dict(params)})


def result(meta: dict[str, Any], parts: dict[str, Any]) -> Any:
    """A predict answer's outputs: the raw part when there is one, else the JSON meta's."""
    if "outputs" in parts:
        return parts["outputs"]
    return meta.get("outputs", meta)


# --- frames -----------------------------------------------------------------------------------------------
def frame(head: Mapping[str, Any], body: Body) -> list[bytes | memoryview]:
    """One request or response on the Unix socket: prefix, JSON head, body buffers."""
    pieces = [body] if isinstance(body, bytes) else body
    raw = json.dumps(head, separators=(",", ":")).encode()
    size = sum(len(b) if isinstance(b, bytes) else b.nbytes for b in pieces)
    return [FRAME.pack(FRAME_MAGIC, len(raw), size) + raw, *pieces]


def joined(body: Body) -> bytes:
    return body if isinstance(body, bytes) else b"".join(body)
