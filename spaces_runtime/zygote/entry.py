"""The zygote process: imports an SDK once in an app's virtualenv, then forks apps that run as if exec'd.

    python .../spaces_runtime/zygote/entry.py --control-fd N --view JSON --preload gradio [--preload MODULE ...]

Run by the environment's own interpreter, with the environment an app's SDK sees at import (the platform's part
of the app's environment: PATH, HOME, TMPDIR, GRADIO_*... without the space's own variables and secrets), cwd /.
It imports only the standard library, its two siblings (loaded by file, so nothing of this folder shadows the
app's packages) and the SDK. Protocol: ``wire``; the sandbox a fork enters: ``enter``.

Before it imports the SDK (whose import chain runs code of packages an index author controls), the zygote leaves
the platform's root behind: a user namespace of its own whose maps the platform writes (0 in it is an
unprivileged host uid of the zygote's own, the apps' uids are mapped one to one so a fork can become its
space's), and new mount, PID, network, IPC, UTS and cgroup namespaces. Its pid 1 (the zygote proper) sees only
``--view``: the system folders, the environment and the appkit read-only, a private /tmp, its own /proc and a
minimal /dev; nothing of the data dir, the store, the runner's secret, other apps' folders or the platform's
code; no network; no process outside its own. Whatever the SDK's import chain does runs there. What needs the
host's root for a fork (its cgroups, its network) the platform does from outside (``wire``).

What a forked app finds, as after ``exec``: its own environment (``os.environ`` replaced), ``sys.argv``,
``sys.orig_argv``, ``sys.path`` (the script's folder or, for ``-m``, the working directory, then what the
interpreter set), ``__main__`` as its own module with ``__file__`` absolute (``python app.py``) or the module run
by ``runpy.run_module`` (``python -m streamlit``), the signal dispositions and mask the interpreter starts with,
freshly seeded ``random`` (and numpy's global generator when the SDK imported numpy), only stdin/stdout/stderr
open, one thread, and its exit code as the interpreter's (an uncaught exception: its traceback and 1).
Not the same: ``hash()``'s seed is the zygote's (shared by its forks), /proc/self/cmdline names the zygote, files
of the host's root show as owned by nobody (the zygote's user namespace does not map root) and
/proc/self/uid_map is the zygote's.
"""

from __future__ import annotations

import sys

_START_PATH = list(sys.path)  # as the interpreter set it for this script: [this folder, PYTHONPATH..., site]
del sys.path[0]  # nothing in this folder may shadow a package of the app's environment

import argparse  # noqa: E402  (after the sys.path fix above, on purpose)
import contextlib  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import runpy  # noqa: E402
import selectors  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

_PRIVATE = "_spaces_zygote_"  # prefix of the siblings' module names; the forks drop them from sys.modules


def _sibling(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(_PRIVATE + name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from spaces_runtime.zygote import enter, wire
else:
    enter, wire = _sibling("enter"), _sibling("wire")

# what a fork restores: the interpreter's dispositions at the zygote's start, but SIGHUP as an exec'd app has it
# (default): under `nohup` the platform, and so the zygote, ignore SIGHUP, while the exec chain's app does not
_DISPOSITIONS = {
    sig: signal.SIG_DFL if sig == signal.SIGHUP else signal.getsignal(sig)
    for sig in signal.valid_signals() if sig not in (signal.SIGKILL, signal.SIGSTOP)
}


@dataclass
class App:
    """What the fork that became the app runs, at the top of the stack (so its exit is the interpreter's)."""

    module: bool  # python -m TARGET
    target: str
    args: list[str]


@dataclass
class _Zygote:
    control: socket.socket
    selector: selectors.BaseSelector
    wakeup: tuple[int, int]
    children: dict[int, socket.socket]


def main(argv: list[str]) -> App:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--warm", action="append", default=[], help="a module the SDK imports lazily; may be absent")
    parser.add_argument("--view", required=True, help="the zygote's own mount view, JSON (enter.Box)")
    parser.add_argument("--tree", type=int, action="append", default=[], help="a detached tree the view mounts")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    _isolate(control, enter.Box.of(json.loads(args.view), tuple(args.tree)))
    started = time.monotonic()
    unsafe = _preload(args.preload, args.warm)
    tasks = len(os.listdir("/proc/self/task"))
    hello = {
        "pid": os.getpid(),
        "threads": threading.active_count(),
        "tasks": tasks,
        "seconds": round(time.monotonic() - started, 3),
        "unsafe": unsafe,
    }
    print(json.dumps(hello), flush=True)
    if unsafe:
        sys.exit(0)
    return _serve(control)


def _isolate(control: socket.socket, view: enter.Box) -> None:
    """The zygote's own sandbox, before anything of the environment is imported. The process the platform
    started stays outside the new PID namespace and waits (as bwrap's outer process does); its child, pid 1 of
    that namespace, returns here as the zygote proper."""
    enter.own_user_namespace(control, os.getppid())
    enter.unshare(enter.FORK_NS | enter.CLONE_NEWNET)
    inner = os.fork()
    if inner:
        with _quiet():
            control.sendall(f"inner {inner}\n".encode())
        control.close()
        os._exit(enter.exit_code(os.waitpid(inner, 0)[1]))
    enter.die_with_parent(None)
    enter.build_root(replace(view, hostname="zygote"))
    for fd in view.trees:
        os.close(fd)
    os.mkdir(enter.FORK_ROOT, 0o700)
    os.chdir("/")


def _preload(modules: list[str], warm: list[str]) -> str | None:
    """None when the SDK is imported and forking stays safe; else why not (a one-line reason). ``warm``: what
    the SDK imports only when an app builds and launches (each fork would import it again); one this SDK version
    lacks is skipped, since the app then never imports it either. The thread check below covers them too."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an SDK that cannot be imported here: the exec'd app will say why
            return f"importing {name} failed: {type(exc).__name__}: {exc}"
    for name in warm:
        # any failure, not only ImportError: an older SDK era's dependency may raise on import (a warm module is
        # a speed-up only; the app imports what it needs itself, and says why if that fails)
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # the imported objects go to the collector's permanent generation: a fork's collections never walk them, so
    # they never write to (and copy) the pages the forks share (CPython's gc.freeze, made for pre-fork servers)
    gc.collect()
    gc.freeze()
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        return f"the SDK started {threading.active_count() - 1} Python thread(s) at import ({names})"
    # a process left behind would outlive the import and share the zygote's namespaces with every fork
    others = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())
    if others:
        return f"the SDK's import left {len(others)} other process(es) running (pids {others} in the zygote)"
    return None


def _serve(control: socket.socket) -> App:
    """Forks an app for each spawn message; returns only in a fork that became an app."""
    wakeup = os.pipe()
    for fd in wakeup:
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wakeup[1])
    signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)  # a handler (not SIG_IGN): children stay reapable
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wakeup[0], selectors.EVENT_READ)
    zygote = _Zygote(control, selector, wakeup, {})
    while True:
        for key, _events in selector.select():
            if key.fileobj is control:
                spawn = wire.receive_spawn(control)
                if spawn is None:  # the platform is gone or let this zygote go; its apps follow (parent death)
                    sys.exit(0)
                app = _fork(zygote, *spawn)
                if app is not None:
                    return app
            else:
                while _drain(wakeup[0]):
                    pass
                _reap(zygote.children)


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _reap(children: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        channel = children.pop(pid, None)
        if channel is None:
            continue
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with _quiet():  # the platform may have stopped listening for this app
            channel.sendall(f"exit {code}\n".encode())
        channel.close()


def _fork(zygote: _Zygote, channel_fd: int, log_fd: int, trees: tuple[int, ...]) -> App | None:
    channel = socket.socket(fileno=channel_fd)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (log_fd, *trees):
            os.close(fd)
        with _quiet():
            channel.sendall(f"error {exc}\n".encode())
        channel.close()
        return None
    if pid == 0:
        return _outer(zygote, channel, log_fd, trees, parent)
    for fd in (log_fd, *trees):  # the zygote never holds an app's log or folders open
        os.close(fd)
    with _quiet():
        channel.sendall(f"forked {pid}\n".encode())
    zygote.children[pid] = channel
    return None


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, (OSError, ValueError))


def _outer(zygote: _Zygote, channel: socket.socket, log_fd: int, trees: tuple[int, ...], parent: int) -> App:
    """The fork: sheds the zygote's descriptors and handlers, reads its request, waits for the platform to give
    it its cgroups and network, enters the sandbox."""
    try:
        enter.die_with_parent(parent)
        _shed(zygote)
        request = wire.read_request(channel)
        for target in (1, 2):
            os.dup2(log_fd, target)
        os.close(log_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        _close_all_but((channel.fileno(), *trees))  # no descriptor of the zygote's reaches the app
        sandbox = request.get("sandbox")
        if not isinstance(sandbox, dict):
            raise ValueError("a request without a sandbox: a zygote forks only into one")
        box = replace(enter.Box.of(sandbox, trees), root=enter.FORK_ROOT)
        enter.wait_for_platform(channel)
        channel.close()
        enter.unshare(enter.FORK_NS)
        init = os.fork()
        if init:
            os._exit(enter.exit_code(os.waitpid(init, 0)[1]))  # bwrap's outer process waits for its init
        return _init(box, request)
    except BaseException:  # a fork must never return into the zygote's loop
        _fatal()
        raise


def _init(box: enter.Box, request: dict[str, object]) -> App:
    try:
        enter.die_with_parent(None)
        enter.build_root(box)
        os.closerange(3, 1 << 16)  # the detached trees are mounted now
        app = os.fork()
        if app:
            os._exit(enter.reap_until(app))
        enter.drop_to(box)
        return _become_app(request)
    except BaseException:
        _fatal()
        raise


def _close_all_but(kept: tuple[int, ...]) -> None:
    low = 3
    for fd in sorted(kept):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def _fatal() -> None:
    print("the zygote could not start this app:", file=sys.stderr)
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)


def _shed(zygote: _Zygote) -> None:
    """The zygote's own descriptors, closed through their objects (so none closes a reused number later)."""
    signal.set_wakeup_fd(-1)
    zygote.selector.close()
    zygote.control.close()
    for fd in zygote.wakeup:
        os.close(fd)
    for other in zygote.children.values():
        other.close()
    zygote.children.clear()
    for sig, handler in _DISPOSITIONS.items():
        if handler is not None:
            with _quiet():
                signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _become_app(request: dict[str, object]) -> App:
    """The interpreter's state as ``python ARGV`` would have made it, in the app's own process."""
    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in env.items()})
    random.seed()  # os.urandom is the kernel's, fresh in every process; random's state was the zygote's
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    module = len(argv) > 2 and argv[1] == "-m"
    first = os.getcwd() if module else os.path.dirname(os.path.abspath(argv[1]))
    sys.path[:] = [first, *_START_PATH[1:]]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    for name in [n for n in sys.modules if n.startswith(_PRIVATE)]:
        del sys.modules[name]
    sys.orig_argv = argv
    return App(module=module, target=argv[2] if module else argv[1], args=argv[3:] if module else argv[2:])


def run(app: App) -> None:
    """``python -m TARGET ARGS`` or ``python TARGET ARGS``, in this process."""
    if app.module:
        sys.argv = ["-m", *app.args]
        runpy.run_module(app.target, run_name="__main__", alter_sys=True)
        return
    path = os.path.abspath(app.target)
    sys.argv = [app.target, *app.args]
    with open(path, "rb") as handle:
        code = compile(handle.read(), path, "exec", dont_inherit=True)
    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(
        __file__=path,
        __cached__=None,
        __builtins__=__builtins__,
        __loader__=importlib.machinery.SourceFileLoader("__main__", path),
    )
    sys.modules["__main__"] = main_module
    try:
        exec(code, main_module.__dict__)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # printed as the interpreter would, from the app's frame
        tb = exc.__traceback__
        sys.excepthook(type(exc), exc, tb.tb_next if tb is not None else None)
        raise SystemExit(1) from None


if __name__ == "__main__":
    run(main(sys.argv[1:]))
