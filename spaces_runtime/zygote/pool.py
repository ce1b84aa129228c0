"""The platform's side of the zygotes: one per (interpreter, SDK, the environment the SDK sees at import), started
on demand, kept while a space launches from it (running or asleep), stopped once no space does and none of its
apps runs: a space redeployed onto a new environment moves to that environment's zygote and the old one goes.

A launch falls back to a plain exec, with a one-line reason, where a fork would not be what an exec is: the
space sets variables the SDK reads at import (HF_*, GRADIO_*...), the SDK started Python threads at import or
failed to import, or the zygote died (the next launch starts a fresh one); and where the environment holds code
that runs at every interpreter start or came from outside the package index (``rules.startup_code``).

The zygote imports the SDK boxed (``entry``): in a user namespace of its own whose maps the platform writes here
(0 in it: an unprivileged host uid of the zygote's own, never root's nor an app's; the apps' uids one to one),
in its own mount, PID, network and IPC namespaces, seeing the system folders and the environment read-only and
nothing of the data dir. The code of the packages the SDK's import chain imports runs there, not as the
platform's root. What a fork needs of the host's root the platform does from outside, for that fork only: its
cgroups and its network (``attach``), and its own folders, passed as detached mount trees.
What is left to trust: the forks of one zygote share its memory, as exec'd apps of one environment share the
code of its packages; a package that is hostile owns the apps that import it either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spaces_runtime.errors import BackendError
from spaces_runtime.sandbox.processes import ns_pids_of
from spaces_runtime.zygote import enter, wire
from spaces_runtime.zygote.rules import PRELOAD, WARM, ZygoteKey, id_map, startup_code

ENTRY = Path(__file__).resolve().with_name("entry.py")
_LINE_LIMIT = 1024 * 1024
_SETPRIV = shutil.which("setpriv")
log = logging.getLogger("spaces_runtime")


# how the platform gives one fork what needs the host's root: its cgroups and network (the fork's host pid)
Attach = Callable[[int], None]


class ZygoteUnavailable(BackendError):
    """No fork for this launch; the message is the one-line reason the run log shows."""


class Forked:
    """A forked app's outer process, as the backend waits on it (the shape of asyncio's Process it uses)."""

    def __init__(
        self, pid: int, events: asyncio.StreamReader, writer: asyncio.StreamWriter, stdout: asyncio.StreamReader
    ) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self.zygote_died = False
        self.on_exit: Callable[[], None] | None = None  # the pool's: a zygote no app runs from any more may go
        self._writer = writer
        self._done = asyncio.ensure_future(self._watch(events))

    async def _watch(self, events: asyncio.StreamReader) -> None:
        code = None
        with contextlib.suppress(ConnectionError):
            while line := await events.readline():
                event = wire.parse_event(line)
                if event is not None and event[0] == "exit":
                    code = event[1]
                    break
        self._writer.close()
        self.zygote_died = code is None
        self.returncode = code if code is not None else -signal.SIGKILL  # its outer process died with it
        if self.on_exit is not None:
            self.on_exit()

    async def wait(self) -> int:
        await asyncio.shield(self._done)
        assert self.returncode is not None
        return self.returncode


@dataclass
class Zygote:
    key: ZygoteKey
    process: subprocess.Popen[bytes]  # the outer process, outside the zygote's PID namespace
    control: socket.socket
    hello: dict[str, object]
    inner: int  # the zygote proper (pid 1 of its PID namespace), as the host sees it
    spaces: set[str] = field(default_factory=set)
    apps: list[Forked] = field(default_factory=list)

    def running_apps(self) -> int:
        self.apps = [a for a in self.apps if a.returncode is None]
        return len(self.apps)

    async def spawn(self, request: dict[str, object], trees: tuple[int, ...], attach: Attach,
                    timeout_s: float) -> Forked:
        ours, theirs = socket.socketpair()
        read_fd, write_fd = os.pipe()
        try:
            wire.send_spawn(self.control, theirs.fileno(), write_fd, trees)
        except OSError as exc:
            ours.close()
            os.close(read_fd)
            raise ZygoteUnavailable(f"the zygote (pid {self.process.pid}) took no request: {exc}") from None
        finally:
            theirs.close()
            os.close(write_fd)
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        stdout = asyncio.StreamReader(limit=_LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(read_fd, "rb", 0))
        events, writer = await asyncio.open_unix_connection(sock=ours)
        writer.write(wire.encode_request(request))
        await writer.drain()
        try:
            pid = await asyncio.wait_for(self._forked(events), timeout_s)
        except (TimeoutError, ConnectionError):
            pid = None
        if pid is None:
            writer.close()
            raise ZygoteUnavailable(f"the zygote (pid {self.process.pid}) died or could not fork")
        try:
            await asyncio.to_thread(attach, pid)
        except BaseException:
            writer.close()  # the fork reads EOF instead of ``go`` and ends
            raise
        writer.write(b"go\n")
        await writer.drain()
        forked = Forked(pid, events, writer, stdout)
        self.apps.append(forked)
        return forked

    async def _forked(self, events: asyncio.StreamReader) -> int | None:
        """The fork's host pid once the zygote said ``forked`` and the fork ``ready`` (either first)."""
        ns_pid, ready = None, False
        while ns_pid is None or not ready:
            event = wire.parse_event(await events.readline())
            if event is None or event[0] not in ("forked", "ready"):
                return None
            if event[0] == "forked":
                ns_pid = event[1]
            ready = ready or event[0] == "ready"
        return host_pid(self.inner, ns_pid)


class Zygotes:
    def __init__(self, start_timeout_s: float = 120.0) -> None:
        self.start_timeout_s = start_timeout_s
        self._zygotes: dict[ZygoteKey, Zygote] = {}
        self._refused: dict[ZygoteKey, str] = {}
        self._locks: defaultdict[ZygoteKey, asyncio.Lock] = defaultdict(asyncio.Lock)  # one start per key at once

    async def spawn(self, space_id: str, key: ZygoteKey, request: dict[str, object],
                    attach: Attach) -> tuple[Forked, Zygote]:
        """``request``'s ``zygote`` (the zygote's view and ids) and ``detached`` (the host folders the fork gets
        as detached trees) are the platform's: they are taken out before the request goes to the fork."""
        request = dict(request)
        setup = request.pop("zygote")
        detached = request.pop("detached")
        assert isinstance(setup, dict) and isinstance(detached, list)
        async with self._locks[key]:
            zygote = await self._get(key, setup)
            self._move(space_id, zygote)
        try:
            trees = _detach_all([str(path) for path in detached])
        except OSError as exc:
            raise BackendError(f"cannot hand the app its folder: {exc}") from None
        try:
            forked = await zygote.spawn(request, tuple(trees), attach, self.start_timeout_s)
        finally:
            for fd in trees:
                os.close(fd)
        # set before anything can await: the old version of a redeployed space is the last app of its zygote, and
        # when it ends that zygote (and the environment it holds open) must go, not wait for the platform's exit
        forked.on_exit = functools.partial(self._retire_if_idle, key, zygote)
        return forked, zygote

    def _retire_if_idle(self, key: ZygoteKey, zygote: Zygote) -> None:
        if self._zygotes.get(key) is zygote and not zygote.spaces and not zygote.running_apps():
            self._stop(key)

    async def _get(self, key: ZygoteKey, setup: dict[str, object]) -> Zygote:
        if key not in self._refused and (risk := startup_code(Path(key.python))) is not None:
            self._refused[key] = f"{risk}, which would run as root before the zygote boxes itself"
        if key in self._refused:
            raise ZygoteUnavailable(self._refused[key])
        zygote = self._zygotes.get(key)
        if zygote is not None and zygote.process.poll() is not None:
            del self._zygotes[key]
            raise ZygoteUnavailable(
                f"the zygote (pid {zygote.process.pid}) died (exit {zygote.process.returncode}); "
                f"the next start gets a fresh one"
            )
        if zygote is None:
            zygote = await self._start(key, setup)
            self._zygotes[key] = zygote
        return zygote

    def _move(self, space_id: str, target: Zygote) -> None:
        """The space launches from ``target`` now; a zygote no space launches from and no app runs from goes."""
        target.spaces.add(space_id)
        for key, other in list(self._zygotes.items()):
            if other is target:
                continue
            other.spaces.discard(space_id)
            if not other.spaces and not other.running_apps():
                self._stop(key)

    def forget(self, space_id: str) -> None:
        """A deleted space no longer keeps its zygote."""
        for key, zygote in list(self._zygotes.items()):
            zygote.spaces.discard(space_id)
            if not zygote.spaces and not zygote.running_apps():
                self._stop(key)

    def _stop(self, key: ZygoteKey) -> None:
        zygote = self._zygotes.pop(key)
        zygote.control.close()  # a zygote exits when its control channel closes
        # and is killed all the same (none of its apps runs): one whose import went bad could ignore that, and
        # keep the folders of spaces that have moved on (everything in its PID namespace dies with its outer process)
        with contextlib.suppress(ProcessLookupError):
            zygote.process.kill()
        log.info("zygote %s (%s) stopped: no space launches from it", zygote.process.pid, key.sdk)

    async def _start(self, key: ZygoteKey, setup: dict[str, object]) -> Zygote:
        """A plain subprocess, its output read by a thread: it belongs to no event loop, so one that ends (a
        test's) leaves no transport behind. Started from the calling (the loop's) thread: PR_SET_PDEATHSIG
        follows the thread that forked, and a worker thread could end first. ``setup``: its ``view`` (what the
        zygote sees), its own ``uid`` and the apps' ``uids`` ([base, count]) for its maps."""
        view = setup["view"]
        assert isinstance(view, dict)
        # every folder of the zygote's view is handed over as a detached tree: it could not open them itself
        # (its uid is nobody's; the data dir, where the environments are, and /root are closed to it)
        try:
            trees = _detach_all([str(m[0]) for m in view["mounts"]])
        except OSError as exc:
            raise ZygoteUnavailable(f"the zygote's view could not be made: {exc}") from None
        boxed = {**view, "mounts": [[f"{enter.FD_SOURCE}{i}", m[1], False] for i, m in enumerate(view["mounts"])]}
        ours, theirs = socket.socketpair()
        argv = [key.python, str(ENTRY), "--control-fd", str(theirs.fileno()), "--view", json.dumps(boxed)]
        for fd in trees:
            argv += ["--tree", str(fd)]
        for module in PRELOAD[key.sdk]:
            argv += ["--preload", module]
        for module in WARM.get(key.sdk, ()):
            argv += ["--warm", module]
        guard = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []
        try:
            process = subprocess.Popen(
                [*guard, *argv],
                cwd="/",
                env=dict(key.env),
                pass_fds=(theirs.fileno(), *trees),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ZygoteUnavailable(f"the zygote did not start: {exc}") from None
        finally:
            theirs.close()
            for fd in trees:
                os.close(fd)
        assert process.stdout is not None
        uids = setup["uids"]
        assert isinstance(uids, list)
        maps = id_map(int(str(setup["uid"])), int(uids[0]), int(uids[1]))
        procs = setup.get("cgroup_procs", [])
        assert isinstance(procs, list)
        try:
            inner = await asyncio.to_thread(_map_ids, process.pid, ours, maps, [str(p) for p in procs],
                                            self.start_timeout_s)
        except (OSError, ValueError) as exc:
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise ZygoteUnavailable(f"the zygote for {key.python} got no user namespace: {exc}") from None
        output = process.stdout.fileno()
        hello, rest = await asyncio.to_thread(_read_hello, output, self.start_timeout_s)
        if hello is None:
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            said = f": {rest[-1]}" if rest else ""
            raise ZygoteUnavailable(f"the zygote for {key.python} did not come up{said}")
        if hello.get("unsafe"):
            ours.close()
            self._refused[key] = f"no zygote for this environment: {hello['unsafe']}"
            raise ZygoteUnavailable(self._refused[key])
        log.info("zygote %s (%s, %s) ready in %s s", process.pid, key.sdk, key.python, hello.get("seconds"))
        threading.Thread(target=_pump, args=(process, rest), daemon=True, name=f"zygote-{process.pid}").start()
        return Zygote(key, process, ours, hello, inner)

    async def close(self) -> None:
        for key in list(self._zygotes):
            self._stop(key)

    def live(self) -> list[Zygote]:
        return [z for z in self._zygotes.values() if z.process.poll() is None]


def _detach_all(paths: list[str]) -> list[int]:
    trees: list[int] = []
    try:
        for path in paths:
            trees.append(enter.detach(path))
    except BaseException:
        for fd in trees:
            os.close(fd)
        raise
    return trees


def _map_ids(pid: int, control: socket.socket, maps: str, procs: list[str], timeout_s: float) -> int:
    """The zygote's side of the handshake (``wire``): the zygotes' cgroup (``procs``: before anything of the
    environment runs, so what its import starts is limited), its uid_map and gid_map, written from outside as
    root; returns the zygote proper's host pid."""
    control.settimeout(timeout_s)
    try:
        if _line(control) != "userns":
            raise ValueError("it did not make its user namespace")
        for path in procs:
            Path(path).write_text(str(pid))
        Path(f"/proc/{pid}/uid_map").write_text(maps)
        Path(f"/proc/{pid}/gid_map").write_text(maps)
        control.sendall(b"mapped\n")
        event = wire.parse_event(_line(control).encode())
        if event is None or event[0] != "inner":
            raise ValueError("it did not start its PID namespace")
        return event[1]
    finally:
        control.settimeout(None)


def _line(control: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < 256:
        chunk = control.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def host_pid(inner: int, ns_pid: int, proc: Path = Path("/proc")) -> int | None:
    """The host pid of the zygote's child ``ns_pid`` (its pid in the zygote's PID namespace): a child of
    ``inner`` whose pids, from the host's namespace inward, end in it. Only the zygote's own children qualify,
    so whatever the zygote says, no process outside it is ever attached."""
    for status in proc.glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = status.read_text()
            ppid = int(text.split("\nPPid:", 1)[1].split()[0])
            if ppid == inner and ns_pids_of(int(status.parent.name), proc)[-1:] == [ns_pid]:
                return int(status.parent.name)
    return None


def _read_hello(fd: int, timeout_s: float) -> tuple[dict[str, object] | None, list[str]]:
    """The zygote's hello and the lines before it; (None, lines) when it ended or took past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    buffer, lines = b"", []
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            with contextlib.suppress(ValueError):
                hello = json.loads(text)
                if isinstance(hello, dict) and "pid" in hello:
                    return hello, [buffer.decode(errors="replace")] if buffer else []
            lines.append(text)
    return None, lines


def _pump(process: subprocess.Popen[bytes], rest: list[str]) -> None:
    """The zygote's own output after its hello (warnings, mostly) goes to the platform's log."""
    assert process.stdout is not None
    for text in rest:
        log.info("zygote %s: %s", process.pid, text.rstrip())
    with process.stdout:
        for line in iter(process.stdout.readline, b""):
            log.info("zygote %s: %s", process.pid, line.decode(errors="replace").rstrip())
