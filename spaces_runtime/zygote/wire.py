"""The zygote's control protocol (stdlib only: both the platform and the zygote import it).

The platform starts a zygote with one end of a socketpair (the control channel). To start an app it makes a
second socketpair (the app's channel) and sends one end of it, with the write end of the app's log pipe, over
the control channel (SCM_RIGHTS): a single byte and two descriptors, nothing else. The zygote forks at once; the
fork reads the request (argv, environment, sandbox) from the app's channel. So the zygote itself never reads an
app's environment (which holds its secrets), and no fork can inherit another app's secrets from its memory.

On the app's channel the zygote then writes ``forked PID`` (the host pid of the app's outer process) and, when
that process ends, ``exit CODE`` (bwrap's convention: the app's code, 128 + N for death by signal N, or -N when
the outer process itself was killed by signal N). A channel that closes without ``exit`` means the zygote died.

The zygote's first line on its stdout is a JSON hello: ``{"pid", "threads", "tasks", "seconds", "unsafe"}``.
"""

from __future__ import annotations

import json
import socket
import struct

SPAWN = b"s"
_LENGTH = struct.Struct("!I")
MAX_REQUEST = 16 * 1024 * 1024


def send_spawn(control: socket.socket, channel_fd: int, log_fd: int) -> None:
    socket.send_fds(control, [SPAWN], [channel_fd, log_fd])


def receive_spawn(control: socket.socket) -> tuple[int, int] | None:
    """(channel fd, log fd); None when the platform closed the control channel."""
    message, fds, _flags, _addr = socket.recv_fds(control, 1, 2)
    if not message:
        return None
    if len(fds) != 2:
        for fd in fds:
            socket.close(fd)
        raise ValueError(f"a spawn message carries 2 descriptors, this one {len(fds)}")
    return fds[0], fds[1]


def encode_request(request: dict[str, object]) -> bytes:
    body = json.dumps(request).encode()
    return _LENGTH.pack(len(body)) + body


def read_request(channel: socket.socket) -> dict[str, object]:
    (length,) = _LENGTH.unpack(_read_exactly(channel, _LENGTH.size))
    if length > MAX_REQUEST:
        raise ValueError(f"a request of {length} bytes is past the limit of {MAX_REQUEST}")
    data = json.loads(_read_exactly(channel, length))
    if not isinstance(data, dict):
        raise ValueError("a request is a JSON object")
    return data


def _read_exactly(channel: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = channel.recv(left)
        if not chunk:
            raise EOFError("the platform closed the app's channel before the whole request")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def parse_event(line: bytes) -> tuple[str, int] | None:
    """b"forked 123\\n" → ("forked", 123); None for anything else (pure)."""
    word, _, value = line.decode(errors="replace").strip().partition(" ")
    if word in ("forked", "exit") and value.lstrip("-").isdigit():
        return word, int(value)
    return None
