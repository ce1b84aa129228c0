"""Process backend: each app is a local process group running in its uv virtualenv, inside the sandbox.

The sandbox (``spaces_runtime.sandbox``): the app runs as its space's own unprivileged uid, in its own mount, PID,
IPC, UTS and network namespaces (it binds 7860 on 0.0.0.0 as on Hugging Face; the gateway reaches it at its
namespace's address), under cgroup limits from its hardware tier. A host that refuses one of these is named at
start and apps are refused, unless the operator opts out with SPACES_ALLOW_UNSANDBOXED=1 (or SPACES_SANDBOX=0):
then apps run as below, as the platform's own user on 127.0.0.1 and a free port.

In the sandbox, ``Instance.backend_ref`` is the app's own host pid (the process running app.py, found by its pid
in the app's PID namespace, ``sandbox.processes``), which is what an operator looks for in ``ps`` and what a
signal sent to the app should reach; the backend waits on bwrap's outer process, whose exit code carries the
app's. Stopping signals every process of the app's own uid (SIGTERM, SIGCONT for a stopped one), then kills
everything in its cgroup.

Unsandboxed, the app gets its own session (``start_new_session``), so stopping it signals the whole group:
whatever the app spawned (workers, a shell, a subprocess) goes with it. stdout and stderr are merged and handed
line by line to the run log.

If the platform itself dies without stopping its apps (SIGKILL, a crash), two things keep orphans from piling
up: each app's leader gets SIGKILL from the kernel when the platform goes (util-linux's `setpriv --pdeathsig`,
which sets PR_SET_PDEATHSIG and execs the app: no preexec_fn, which is unsafe in a threaded server), and every group
is recorded under the data dir so the next start kills whatever of it is left (``adopt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.logs import LogSink
from spaces_runtime.sandbox.processes import find_app, signal_of_exit
from spaces_runtime.supervisor.backend import ExitInfo, Instance, LaunchSpec
from spaces_runtime.supervisor.launch import process_command
from spaces_runtime.zygote.pool import Forked, Zygotes, ZygoteUnavailable
from spaces_runtime.zygote.rules import plan_fork

if TYPE_CHECKING:
    from spaces_runtime.sandbox.launcher import Prepared, Sandbox
    from spaces_runtime.supervisor.loop import Supervisor

_LINE_LIMIT = 1024 * 1024  # a longer line is cut rather than stopping the log pump
_DRAIN_S = 2.0  # how long to wait for the last lines of a dead app (children may hold the pipe open)
_APP_PID_WAIT_S = 10.0  # bwrap forks the app within milliseconds; past this the host is in trouble
_APP_PID_POLL_S = 0.01
_SETPRIV = shutil.which("setpriv")
log = logging.getLogger("spaces_runtime")


@dataclass
class _Running:
    process: asyncio.subprocess.Process | Forked
    pump: asyncio.Task[None]
    sandboxed: Prepared | None = None


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


def describe_sandboxed_exit(returncode: int) -> ExitInfo:
    """bwrap's exit code says how the app ended: 128 + N is death by signal N (as a shell reports it); bwrap
    itself killed (a negative code) is reported as such."""
    sig = signal_of_exit(returncode) if returncode > 0 else None
    return describe_exit(-sig.value if sig is not None else returncode)


class ProcessBackend:
    name = "process"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running: dict[str, _Running] = {}
        self._groups_dir = settings.data_dir / "run" / "process-groups"
        self._sandbox: Sandbox | None = None
        self._refusal: BackendError | None = None
        self._checked = False
        self.zygotes = Zygotes() if settings.zygote else None

    def sandbox(self) -> Sandbox | None:
        """The sandbox, checked against the host once; None when the operator opted out. Raises the host's
        refusal (naming what is missing) on every launch while the operator has not opted out."""
        if not self._checked:
            self._checked = True
            self._sandbox, self._refusal = _check_sandbox(self.settings)
        if self._refusal is not None:
            raise self._refusal
        return self._sandbox

    async def launch(self, spec: LaunchSpec, log: LogSink) -> Instance:
        if spec.env_dir is None:
            raise BackendError(f"{spec.space_id}: no virtualenv to run in (LaunchSpec.env_dir is None)")
        python = spec.env_dir / "bin" / "python"
        if not python.exists():
            raise BackendError(f"{spec.space_id}: {python} does not exist; rebuild the app's environment")
        sandbox = await asyncio.to_thread(self.sandbox)
        if sandbox is not None:
            return await self._launch_sandboxed(sandbox, spec, python, log)
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
        self._running[ref] = _Running(process, asyncio.create_task(_pump(process.stdout, log)))
        return Instance(space_id=spec.space_id, upstream=f"http://127.0.0.1:{port}", backend_ref=ref,
                        started_at=time.time())

    async def _launch_sandboxed(self, sandbox: Sandbox, spec: LaunchSpec, python: Path, log: LogSink) -> Instance:
        # a fork makes its own network namespace, which the platform plumbs (``attach_fork``): a placeholder till then
        prepared = await asyncio.to_thread(sandbox.prepare, spec, python, self.zygotes is None)
        limits = prepared.limits
        log(f"$ {spec.app_file} in the sandbox as uid {prepared.uid} at {prepared.upstream.removeprefix('http://')} "
            f"(hardware {spec.hardware}: {limits.nano_cpus / 1e9:g} CPU, {limits.memory_label} memory, "
            f"{limits.pids} pids)")
        process: asyncio.subprocess.Process | Forked | None = None
        if self.zygotes is not None:
            process = await self._fork(sandbox, spec, prepared, log)
            if process is None:
                try:
                    await asyncio.to_thread(sandbox.plumb, prepared)
                except BaseException:
                    await asyncio.to_thread(sandbox.release, prepared)
                    raise
        if process is None:
            try:
                process = await asyncio.create_subprocess_exec(
                    *prepared.argv, cwd="/", env=prepared.env,
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True, limit=_LINE_LIMIT)
            except OSError as exc:
                sandbox.release(prepared)
                raise BackendError(f"{spec.space_id}: the sandbox did not start: {exc}") from None
        pump = asyncio.create_task(_pump(process.stdout, log))
        app_pid = await _app_pid(prepared, process)
        if app_pid is None and process.returncode is None:
            log(f"the sandbox did not start {spec.app_file} within {_APP_PID_WAIT_S:g} s; pid {process.pid} is "
                f"its bwrap leader")
        ref = str(app_pid or process.pid)
        self._running[ref] = _Running(process, pump, prepared)
        return Instance(space_id=spec.space_id, upstream=prepared.upstream, backend_ref=ref, started_at=time.time())

    async def _fork(self, sandbox: Sandbox, spec: LaunchSpec, prepared: Prepared, log: LogSink) -> Forked | None:
        """The app forked from its environment's zygote, in the same sandbox; None (and why, in the run log)
        where it must be exec'd instead."""
        assert self.zygotes is not None
        key = plan_fork(spec.env, spec.sdk, list(prepared.plan.argv), prepared.env)
        if isinstance(key, str):
            log(f"zygote: {key}; starting it with exec")
            return None
        try:
            request = await asyncio.to_thread(sandbox.fork_request, prepared)
            attach = functools.partial(sandbox.attach_fork, prepared)
            forked, zygote = await self.zygotes.spawn(spec.space_id, key, request, attach)
        except ZygoteUnavailable as exc:
            log(f"zygote: {exc}; starting it with exec")
            return None
        except (BackendError, OSError) as exc:  # the platform's part for the fork (cgroups, network) failed
            await asyncio.to_thread(sandbox.release, prepared)
            raise BackendError(f"{spec.space_id}: the forked app's sandbox could not be set up: {exc}") from None
        log(f"forked from the {spec.sdk} zygote (pid {zygote.process.pid}) of {key.python}")
        return forked

    async def exited(self, instance: Instance) -> ExitInfo | None:
        running = self._running.get(instance.backend_ref)
        if running is None:
            return ExitInfo(code=None, reason="not running")
        if running.process.returncode is None:
            return None
        # the log's last lines (often a traceback) should be written before anyone reads the exit
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.pump), _DRAIN_S)
        box = running.sandboxed
        if box is None:
            return describe_exit(running.process.returncode)
        if isinstance(running.process, Forked) and running.process.zygote_died:
            return ExitInfo(code=running.process.returncode, reason="killed with its zygote, which died")
        if box.cgroup.oom_killed():
            return ExitInfo(code=running.process.returncode, reason=f"out of memory (limit {box.limits.memory_label})",
                            oom=True)
        return describe_sandboxed_exit(running.process.returncode)

    async def stop(self, instance: Instance, grace_s: float) -> None:
        running = self._running.get(instance.backend_ref)
        if running is None:
            return
        if running.sandboxed is not None:
            await self._stop_sandboxed(instance, running, grace_s)
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

    async def _stop_sandboxed(self, instance: Instance, running: _Running, grace_s: float) -> None:
        """SIGTERM to the app's own processes (its uid: bwrap's root-owned monitor would take the app down with
        SIGKILL at once), then SIGKILL to everything in its cgroup; the namespace and cgroup go last. SIGCONT
        right after SIGTERM (as systemd does): a stopped app handles its SIGTERM now, not after the grace."""
        box = running.sandboxed
        assert box is not None
        own = box.cgroup.pids()
        _signal_uid(own, box.uid, signal.SIGTERM)
        _signal_uid(own, box.uid, signal.SIGCONT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running.process.wait(), grace_s)
        deadline = time.monotonic() + _DRAIN_S
        while box.cgroup.pids() and time.monotonic() < deadline:
            box.cgroup.signal_all(signal.SIGKILL)
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            await running.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.pump), _DRAIN_S)
        running.pump.cancel()
        self._running.pop(instance.backend_ref, None)
        if self._sandbox is not None:
            await asyncio.to_thread(self._sandbox.release, box)

    async def adopt(self) -> list[Instance]:
        """Processes cannot be taken over (their output pipes died with the old platform): kill what is left of
        the groups a previous run recorded, so restarted apps do not run twice. First, the sandbox is checked
        against the host, and what it lacks is logged."""
        with contextlib.suppress(BackendError):  # logged by the check; launches raise it
            sandbox = await asyncio.to_thread(self.sandbox)
            if sandbox is not None:
                await asyncio.to_thread(sandbox.clean_leftovers)
        if self._groups_dir.is_dir():
            for record in self._groups_dir.iterdir():
                await asyncio.to_thread(_kill_leftover, record)
        return []

    def pss(self, instance: Instance) -> int | None:
        """The instance's proportional set size in bytes (``/proc/PID/smaps_rollup``), summed over its processes
        (its cgroup's, or its process group's when unsandboxed): shared pages (a zygote's imported SDK) count
        once in all, split among the processes that map them. None when it is not running here."""
        running = self._running.get(instance.backend_ref)
        if running is None:
            return None
        pids = running.sandboxed.cgroup.pids() if running.sandboxed is not None else _members(running.process.pid)
        return pss_bytes(pids)

    def zygote_pss(self) -> list[tuple[str, int, int]]:
        """(sdk, pid, PSS bytes) of each live zygote."""
        live = self.zygotes.live() if self.zygotes is not None else []
        return [(z.key.sdk, z.inner, pss_bytes([z.process.pid, z.inner])) for z in live]

    def attach_logs(self, instance: Instance, log: LogSink) -> None:
        """Never called: processes are not adopted (see ``adopt``)."""

    def held(self, space_id: str) -> str | None:
        return None  # nothing here stops an app on purpose without the supervisor

    async def remove_data(self, space_id: str) -> None:
        """A deleted space's /data (kept across redeploys and restarts) goes with it."""
        from spaces_runtime.sandbox.launcher import Sandbox, disks_of

        if self.zygotes is not None:
            self.zygotes.forget(space_id)
        folder = Sandbox.data_dir_of(self.settings, space_id)
        disks = self._sandbox.disks if self._sandbox is not None else disks_of(self.settings)
        await asyncio.to_thread(disks.remove, folder)
        await asyncio.to_thread(shutil.rmtree, folder, True)

    def _record_group(self, pgid: int, spec: LaunchSpec) -> None:
        self._groups_dir.mkdir(parents=True, exist_ok=True)
        marker = str(spec.env_dir)
        (self._groups_dir / str(pgid)).write_text(json.dumps({"space_id": spec.space_id, "marker": marker}))


def _check_sandbox(settings: Settings) -> tuple[Sandbox | None, BackendError | None]:
    """(the sandbox, None) on a host that has what it needs; (None, why) when it lacks something and the operator
    has not opted out; (None, None) when the operator opted out. Said loudly at start either way."""
    if not settings.sandbox:
        log.warning("SPACES_SANDBOX=0: apps run WITHOUT a sandbox, as the platform's own user, seeing its files")
        return None, None
    from spaces_runtime.sandbox import preflight
    from spaces_runtime.sandbox.launcher import Sandbox, unavailable

    checks = preflight.run_checks()
    lacking = preflight.missing(checks)
    if not lacking:
        return Sandbox(settings, preflight.tools()), None
    for line in preflight.report(checks):
        log.error("sandbox: %s", line)
    if settings.allow_unsandboxed:
        log.warning("SPACES_ALLOW_UNSANDBOXED=1: apps run WITHOUT a sandbox, as the platform's own user")
        return None, None
    return None, unavailable([f"{c.feature}: {c.detail}" for c in lacking])


async def _app_pid(box: Prepared, leader: asyncio.subprocess.Process | Forked) -> int | None:
    """The app's host pid once bwrap has forked it; None if bwrap ended first or took past the wait."""
    deadline = time.monotonic() + _APP_PID_WAIT_S
    while leader.returncode is None and time.monotonic() < deadline:
        found = find_app(box.cgroup.pids(), nesting=2 if isinstance(leader, Forked) else 1)
        if found is not None:
            return found
        await asyncio.sleep(_APP_PID_POLL_S)
    return None


def _signal_uid(pids: list[int], uid: int, sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            owner = int((Path("/proc") / str(pid) / "status").read_text().split("\nUid:")[1].split()[0])
            if owner == uid:
                os.kill(pid, sig)


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


def space_pss(supervisor: Supervisor, space_id: str) -> int | None:
    """The space's app memory (PSS bytes, every instance of it: two while a redeploy replaces one); None when
    nothing of it runs or its backend is not this one (containers are measured by their engine)."""
    backend = supervisor.backend
    if not isinstance(backend, ProcessBackend):
        return None
    sizes = [backend.pss(i) for i in supervisor.instances() if i.space_id == space_id]
    known = [size for size in sizes if size is not None]
    return sum(known) if known else None


def host_memory(meminfo: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """The host's total and available memory in bytes."""
    found = {}
    with contextlib.suppress(OSError):
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                found[key.removeprefix("Mem").lower()] = int(value.split()[0]) * 1024
    return found


def memory_metrics(supervisor: Supervisor) -> list[str]:
    """Prometheus lines: each running app's PSS, each zygote's, and the host's memory."""
    lines = ["# HELP spaces_runtime_app_pss_bytes Proportional set size of a running app (all its processes).",
             "# TYPE spaces_runtime_app_pss_bytes gauge"]
    for space_id in sorted({i.space_id for i in supervisor.instances()}):
        size = space_pss(supervisor, space_id)
        if size is not None:
            lines.append(f'spaces_runtime_app_pss_bytes{{space="{space_id}"}} {size}')
    if isinstance(supervisor.backend, ProcessBackend):
        lines += ["# HELP spaces_runtime_zygote_pss_bytes Proportional set size of an SDK zygote.",
                  "# TYPE spaces_runtime_zygote_pss_bytes gauge"]
        lines += [f'spaces_runtime_zygote_pss_bytes{{sdk="{sdk}",pid="{pid}"}} {size}'
                  for sdk, pid, size in supervisor.backend.zygote_pss()]
    lines += ["# HELP spaces_runtime_host_memory_bytes The platform host's memory.",
              "# TYPE spaces_runtime_host_memory_bytes gauge"]
    lines += [f'spaces_runtime_host_memory_bytes{{kind="{kind}"}} {size}' for kind, size in host_memory().items()]
    return lines


def pss_of(smaps_rollup: str) -> int:
    """Bytes of the ``Pss:`` line of a /proc/PID/smaps_rollup text (pure; the kernel writes kB)."""
    for line in smaps_rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def pss_bytes(pids: list[int]) -> int:
    """The PSS of these processes together; one that ended meanwhile counts nothing."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            total += pss_of((Path("/proc") / str(pid) / "smaps_rollup").read_text())
    return total


def _members(pgid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                found.append(int(stat.parent.name))
    return found


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_group(pgid: int, leader: asyncio.subprocess.Process | Forked, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pgid, leader):
        await asyncio.sleep(0.05)


def _group_alive(pgid: int, leader: asyncio.subprocess.Process | Forked) -> bool:
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


async def _pump(stdout: asyncio.StreamReader | None, log: LogSink) -> None:
    assert stdout is not None
    while True:
        try:
            line = await stdout.readline()
        except ValueError:  # a line past the limit: asyncio dropped it; say so and go on
            log(f"[... a line longer than {_LINE_LIMIT} bytes was dropped ...]")
            continue
        if not line:
            return
        log(line.decode("utf-8", errors="replace").rstrip("\r\n"))
