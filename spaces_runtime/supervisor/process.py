"""Process backend: each app is a local process group running in its uv virtualenv.

The app gets its own session (``start_new_session``), so stopping it signals the whole group: whatever the app
spawned (workers, a shell, a subprocess) goes with it. stdout and stderr are merged and handed line by line to
the run log.

If the platform itself dies without stopping its apps (SIGKILL, a crash), two things keep orphans from piling
up: each app's leader gets SIGKILL from the kernel when the platform goes (util-linux's `setpriv --pdeathsig`,
which sets PR_SET_PDEATHSIG and execs the app: no preexec_fn, which is unsafe in a threaded server), and every group
is recorded under the data dir so the next start kills whatever of it is left (``adopt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.logs import LogSink
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.launch import process_command

_LINE_LIMIT = 1024 * 1024  # a longer line is cut rather than stopping the log pump
_DRAIN_S = 2.0  # how long to wait for the last lines of a dead app (children may hold the pipe open)
_SETPRIV = shutil.which("setpriv")


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def describe_exit(returncode: int) -> ExitInfo:
    """asyncio reports death by signal N as -N."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return ExitInfo(code=returncode, reason=f"killed by {name} ({-returncode})")
    return ExitInfo(code=returncode, reason=f"exited with code {returncode}")


class ProcessBackend:
    name = "process"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running: dict[str, _Running] = {}
        self._groups_dir = settings.data_dir / "run" / "process-groups"

    async def launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        if spec.env_dir is None:
            raise BackendError(f"{spec.space_id}: no virtualenv to run in (LaunchSpec.env_dir is None)")
        python = spec.env_dir / "bin" / "python"
        if not python.exists():
            raise BackendError(f"{spec.space_id}: {python} does not exist; rebuild the app's environment")
        port = free_port()
        argv, env = process_command(spec, port, python, inherited=dict(os.environ))
        log(f"$ {' '.join(argv)}  (port {port})")
        guard = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []
        process = await asyncio.create_subprocess_exec(
            *guard, *argv, cwd=spec.app_dir, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, limit=_LINE_LIMIT,
        )
        ref = str(process.pid)
        self._record_group(process.pid, spec)
        self._running[ref] = _Running(process, asyncio.create_task(_pump(process, log)))
        return Instance(space_id=spec.space_id, upstream=f"http://127.0.0.1:{port}", backend_ref=ref,
                        started_at=time.time())

    async def exited(self, instance: Instance) -> ExitInfo | None:
        running = self._running.get(instance.backend_ref)
        if running is None:
            return ExitInfo(code=None, reason="not running")
        if running.process.returncode is None:
            return None
        # the log's last lines (often a traceback) should be written before anyone reads the exit
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.pump), _DRAIN_S)
        return describe_exit(running.process.returncode)

    async def stop(self, instance: Instance, grace_s: float) -> None:
        running = self._running.get(instance.backend_ref)
        if running is None:
            return
        pgid = running.process.pid  # the leader of its own session: its pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        await _wait_group(pgid, running.process, grace_s)
        _signal_group(pgid, signal.SIGKILL)
        await _wait_group(pgid, running.process, _DRAIN_S)  # SIGKILL lands asynchronously
        with contextlib.suppress(ProcessLookupError):
            await running.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.pump), _DRAIN_S)
        running.pump.cancel()
        self._running.pop(instance.backend_ref, None)
        (self._groups_dir / str(pgid)).unlink(missing_ok=True)

    async def adopt(self) -> list[Instance]:
        """Processes cannot be taken over (their output pipes died with the old platform): kill what is left of
        the groups a previous run recorded, so restarted apps do not run twice."""
        if self._groups_dir.is_dir():
            for record in self._groups_dir.iterdir():
                await asyncio.to_thread(_kill_leftover, record)
        return []

    def attach_logs(self, instance: Instance, log: LogSink) -> None:
        """Never called: processes are not adopted (see ``adopt``)."""

    async def remove_data(self, space_id: str) -> None:
        """Processes have no /data of their own yet: nothing to remove."""

    def _record_group(self, pgid: int, spec: LaunchSpec) -> None:
        self._groups_dir.mkdir(parents=True, exist_ok=True)
        marker = str(spec.env_dir)
        (self._groups_dir / str(pgid)).write_text(json.dumps({"space_id": spec.space_id, "marker": marker}))


def _kill_leftover(record: Path) -> None:
    """Kill group ``record.name`` if a member still runs our app (the recorded virtualenv is in its command
    line), so a recycled pid is never hit."""
    with contextlib.suppress(ValueError, OSError, KeyError):
        pgid = int(record.name)
        marker = json.loads(record.read_text())["marker"]
        if marker and any(marker in cmdline for cmdline in _group_cmdlines(pgid)):
            _signal_group(pgid, signal.SIGKILL)
    record.unlink(missing_ok=True)


def _group_cmdlines(pgid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                found.append((stat.parent / "cmdline").read_bytes().decode(errors="replace"))
    return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_group(pgid: int, leader: asyncio.subprocess.Process, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pgid, leader):
        await asyncio.sleep(0.05)


def _group_alive(pgid: int, leader: asyncio.subprocess.Process) -> bool:
    """Whether any process of the group still runs. A reaped leader no longer counts; a zombie child of an
    exited leader is reaped by init, so a group that only has zombies left is dead enough."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return leader.returncode is None or _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


async def _pump(process: asyncio.subprocess.Process, log: LogSink) -> None:
    assert process.stdout is not None
    while True:
        try:
            line = await process.stdout.readline()
        except ValueError:  # a line past the limit: asyncio dropped it; say so and go on
            log(f"[... a line longer than {_LINE_LIMIT} bytes was dropped ...]")
            continue
        if not line:
            return
        log(line.decode("utf-8", errors="replace").rstrip("\r\n"))
