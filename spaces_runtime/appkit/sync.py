"""The synchronous client: frames over a kept-alive Unix socket, or HTTP/1.1 over TCP.

One connection per thread, because Gradio calls handlers from threads.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from spaces_runtime.appkit.address import Address, ConnectAttempts, quoted
from spaces_runtime.appkit.wire import (
    FRAME,
    FRAME_MAGIC,
    Body,
    decode,
    encode,
    error_from,
    frame,
    joined,
    request_body,
    result,
)
from spaces_runtime.errors import RunnerError


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


class Runner:
    """Synchronous client; one kept-alive connection per thread (Gradio calls handlers from threads)."""

    def __init__(self, url: str | None = None, *, token: str | None = None, app_id: str | None = None,
                 timeout: float = 120.0, connect_wait: float | None = None) -> None:
        self.address = Address(url, token, app_id, timeout, connect_wait)
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
        conn.request(method, path, body=joined(body), headers=dict(headers))
        resp = conn.getresponse()
        return resp.status, resp.read()

    def _connection(self) -> tuple[_FrameConnection | http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        conn = self._open()
        self._local.conn = conn
        return conn, False

    def _open(self) -> _FrameConnection | http.client.HTTPConnection:
        """A new connection, waiting (ConnectAttempts) while nothing listens at the address yet."""
        a = self.address
        attempts = ConnectAttempts(a)
        while True:
            try:
                if a.unix_path:
                    return _FrameConnection(a.unix_path, a.timeout)
                conn = http.client.HTTPConnection(a.host, a.port, timeout=a.timeout)
                conn.connect()  # now, not at the first request, so that a refusal is waited out here
                return conn
            except OSError as exc:
                time.sleep(attempts.pause_after(exc))

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else b""
        return json.loads(self.request(method, path, body, {"content-type": "application/json"}) or b"null")

    def models(self) -> list[dict[str, Any]]:
        return self.json("GET", "/v1/models")["models"]

    def info(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/v1/models/{quoted(name)}")

    def load(self, name: str, *, pin: bool = False) -> dict[str, Any]:
        return self.json("POST", f"/v1/models/{quoted(name)}/load", {"pin": pin})

    def unload(self, name: str) -> dict[str, Any]:
        return self.json("POST", f"/v1/models/{quoted(name)}/unload", {})

    def register(self, name: str, file: str | os.PathLike[str] | bytes, *, task: str = "tensor",
                 input_shape: list[int] | None = None, input_dtype: str = "float32",
                 labels: list[str] | None = None, fmt: str | None = None) -> dict[str, Any]:
        """Upload a TorchScript (``.pt``) or torch.export (``.pt2``, saved by ``torch.export.save``) file; any
        app can then use ``name``. ``fmt`` ("torchscript" or "export") is taken from the suffix unless given."""
        data = file if isinstance(file, bytes) else open(file, "rb").read()  # noqa: SIM115
        fmt = fmt or ("export" if not isinstance(file, bytes) and str(file).endswith(".pt2") else "torchscript")
        meta = {"task": task, "format": fmt, "input_shape": input_shape, "input_dtype": input_dtype,
                "labels": labels or []}
        return json.loads(self.request("PUT", f"/v1/models/{quoted(name)}", encode(meta, {"file": data})))

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
        data = self.runner.request("POST", f"/v1/models/{quoted(self.name)}/predict",
                                   request_body(inputs, params), headers)
        return result(*decode(data))
