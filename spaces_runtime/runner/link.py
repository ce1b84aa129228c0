"""The front process's handle on the worker subprocess: send a message, await its reply; restart on death."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spaces_runtime.errors import WorkerDiedError
from spaces_runtime.runner.worker import HEADER, pack

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        try:
            return f"signal {-returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The runner's own environment for the child, offline for model hubs and able to import this package."""
    env = dict(os.environ)  # inherited as a whole, the way any child process would be
    path = env.get("PYTHONPATH")
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": f"{PACKAGE_PARENT}{os.pathsep}{path}" if path else PACKAGE_PARENT})
    env.update(extra or {})
    return env


class WorkerLink:
    def __init__(self, config: dict[str, Any], on_state: Callable[[dict[str, Any]], None],
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.config, self.on_state, self.on_restart = config, on_state, on_restart
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.ready = asyncio.Event()
        self.restarts = 0
        self.last_exit: str | None = None
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spaces_runtime.runner.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, env=worker_env(), start_new_session=True)
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(pack(self.config))
        hello = await _read(self.proc.stdout)
        if hello is None:
            raise WorkerDiedError(f"the model worker exited with {describe_exit(await self.proc.wait())} "
                                  "while starting", hint="see the runner log for the worker's traceback")
        self.on_state(hello["state"])
        self._reader = asyncio.create_task(self._read_replies(self.proc))
        self.ready.set()

    async def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        await self.ready.wait()
        proc = self.proc
        assert proc and proc.stdin
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = fut
        try:
            proc.stdin.write(pack({**msg, "id": msg_id}))
            await proc.stdin.drain()
        except (ConnectionError, BrokenPipeError):
            pass  # the reader sees the death and fails this future with the exit status
        try:
            return await fut
        finally:
            self.pending.pop(msg_id, None)

    async def _read_replies(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout
        while (reply := await _read(proc.stdout)) is not None:
            self.on_state(reply.pop("state", {}) or {})
            fut = self.pending.get(reply["id"])
            if fut and not fut.done():
                fut.set_result(reply)
        await self._died(proc)

    async def _died(self, proc: asyncio.subprocess.Process) -> None:
        self.ready.clear()
        how = describe_exit(await proc.wait())
        self.last_exit = how
        for fut in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(WorkerDiedError(
                    f"the model worker exited with {how} while running this request",
                    hint="the runner restarted it; retry the request"))
        self.pending.clear()
        if self._stopping:
            return
        self.restarts += 1
        if self.on_restart:
            self.on_restart(how)
        await self._restart()

    async def _restart(self) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                await self.start()
                return
            except (WorkerDiedError, OSError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self, grace_s: float = 5.0) -> None:
        self._stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin:
            proc.stdin.close()  # EOF: the worker's loop ends on its own
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader:
            await asyncio.gather(self._reader, return_exceptions=True)


async def _read(stream: asyncio.StreamReader) -> dict[str, Any] | None:
    try:
        head = await stream.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        return pickle.loads(await stream.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
