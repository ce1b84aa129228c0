"""`spaces run DIR`: one app, locally, exactly as the platform builds and starts it — in the foreground.

Where the platform would sandbox apps (root, and the host has what the sandbox needs), the app is built in the
build jail and runs in the same sandbox as under `spaces serve` (its own uid, namespaces, limits, /data), with
127.0.0.1:PORT relayed to its sandbox address: what works locally works in production, and what the sandbox
forbids fails here first. Elsewhere (a laptop without root) it runs as the user, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from builder import plan as build_plan
from builder import spec as build_spec
from builder.venv import python_in
from spaces_runtime.config import Settings
from spaces_runtime.deploy.environments import VenvEnvironmentBuilder
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.launch import process_command

if TYPE_CHECKING:  # imported when used: a static site needs none of it
    from spaces_runtime.supervisor.process import ProcessBackend


def run_local(folder: Path, port: int, settings: Settings) -> int:
    spec = build_spec.load(folder)
    for warning in spec.warnings:
        _say(f"warning: {warning}")
    if spec.sdk == "static":
        _say(f"serving {folder} at http://127.0.0.1:{port}/")
        os.execv(sys.executable, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                  "--directory", str(folder)])
    backend, why_not = _sandboxed_backend(settings)
    plan = build_plan.make(spec, settings)
    builder = VenvEnvironmentBuilder(settings, sandboxed=lambda: backend is not None)
    env_dir = builder.build(plan, spec, folder, _say).env_dir
    assert env_dir is not None
    name = folder.resolve().name.lower()
    launch = LaunchSpec(space_id=f"local/{name}", sdk=spec.sdk, app_dir=folder.resolve(), app_file=spec.app_file,
                        base_path="", env={"SPACE_ID": f"local/{name}", "SPACE_TITLE": spec.title},
                        env_dir=env_dir, sdk_version=spec.sdk_version)
    if backend is not None:
        return asyncio.run(_run_sandboxed(backend, launch, port, spec.title))
    _say(f"running WITHOUT the sandbox ({why_not}): the app runs as you and sees your files")
    argv, env = process_command(launch, port, python_in(env_dir), dict(os.environ))
    _say(f"starting {spec.title} at http://127.0.0.1:{port}/")
    os.chdir(folder)
    os.execve(argv[0], argv, env)
    return 0  # not reached: exec replaced this process


def _sandboxed_backend(settings: Settings) -> tuple[ProcessBackend | None, str]:
    """The process backend when the app can run in the sandbox here; else None and why not."""
    from spaces_runtime.errors import BackendError
    from spaces_runtime.supervisor.process import ProcessBackend

    if not settings.sandbox:
        return None, "SPACES_SANDBOX=0"
    if os.geteuid() != 0:
        return None, "the sandbox needs root"
    backend = ProcessBackend(settings)
    try:
        return (backend, "") if backend.sandbox() is not None else (None, "the sandbox is turned off")
    except BackendError as exc:
        return None, exc.message


async def _run_sandboxed(backend: ProcessBackend, launch: LaunchSpec, port: int, title: str) -> int:
    """Start the app in its sandbox, relay 127.0.0.1:PORT to it until it exits or Ctrl-C; its exit code."""
    instance = await backend.launch(launch, _say)
    host, _, app_port = instance.upstream.removeprefix("http://").partition(":")
    relay = await asyncio.start_server(lambda r, w: _relay(r, w, host, int(app_port)), "127.0.0.1", port)
    _say(f"starting {title} at http://127.0.0.1:{port}/ (in the sandbox, at {instance.upstream})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            ended = await backend.exited(instance)
            if ended is not None:
                _say(f"the app {ended.reason}")
                return ended.code if ended.code is not None else 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0
    finally:
        relay.close()
        await backend.stop(instance, grace_s=5)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
    """One TCP connection, both ways, byte for byte (HTTP, SSE and WebSockets alike)."""
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
