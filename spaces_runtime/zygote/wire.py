"""The zygote's control protocol (stdlib only: both the platform and the zygote import it).

The platform starts a zygote with one end of a socketpair (the control channel). First, the user namespace: the
zygote writes ``userns``, the platform writes its uid_map and gid_map and answers ``mapped``, and the zygote's
outer process names its child, the zygote proper, with ``inner PID`` (a host pid). Then, to start an app the
platform makes a second socketpair (the app's channel) and sends one end of it, with the write end of the app's
log pipe and the detached mount trees of the app's own folders (``enter.detach``: the app's folder, /data, the
runner's socket folder, which the zygote's view never shows), over the control channel (SCM_RIGHTS): a single
byte and the descriptors, nothing else. The zygote forks at once; the fork reads the request (argv, environment,
sandbox) from the app's channel. So the zygote's own loop never reads an app's environment (which holds its
secrets), and no fork can inherit another app's secrets from its memory.

On the app's channel the zygote then writes ``forked PID`` (the pid of the app's outer process in the zygote's
PID namespace) and, when that process ends, ``exit CODE`` (bwrap's convention: the app's code, 128 + N for death
by signal N, or -N when the outer process itself was killed by signal N). The fork itself writes ``ready 0`` once
it has a network namespace of its own; the platform, having moved it into the instance's cgroups and plumbed
that namespace, answers ``go`` (or closes the channel: the fork ends). A channel that closes without ``exit``
means the zygote died.

The zygote's first line on its stdout is a JSON hello: ``{"pid", "threads", "tasks", "seconds", "unsafe"}``.
"""

from __future__ import annotations

import json
import socket
import struct

SPAWN = b"s"
_LENGTH = struct.Struct("!I")
MAX_REQUEST = 16 * 1024 * 1024


MAX_TREES = 16


def send_spawn(control: socket.socket, channel_fd: int, log_fd: int, trees: tuple[int, ...] = ()) -> None:
    if len(trees) > MAX_TREES:
        raise ValueError(f"{len(trees)} mount trees for one app, past the limit of {MAX_TREES}")
    socket.send_fds(control, [SPAWN], [channel_fd, log_fd, *trees])


def receive_spawn(control: socket.socket) -> tuple[int, int, tuple[int, ...]] | None:
    """(channel fd, log fd, mount tree fds); None when the platform closed the control channel."""
    message, fds, _flags, _addr = socket.recv_fds(control, 1, 2 + MAX_TREES)
    if not message:
        return None
    if len(fds) < 2:
        for fd in fds:
            socket.close(fd)
        raise ValueError(f"a spawn message carries at least 2 descriptors, this one {len(fds)}")
    return fds[0], fds[1], tuple(fds[2:])


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
    if word in ("forked", "exit", "ready", "inner") and value.lstrip("-").isdigit():
        return word, int(value)
    return None
