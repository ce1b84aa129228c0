"""BuildPlan → a uv virtualenv at ``envs_dir/{env_hash}``, built once and reused.

A build goes into a temporary folder that is renamed into place only when complete (the marker file is written
last), so a crash never leaves a half-built environment under the hash. A file lock (fcntl.flock) per hash makes
concurrent builds of the same environment, in threads or in processes, build it once. The virtualenv is created
``--relocatable`` because it is built under another name than the one it is used from.

The interpreter is one this host has (``builder.pythons``), handed to uv by path; uv downloads none unless the
operator allows it. A plan with an ``EraPin`` resolves with ``--exclude-newer`` at its SDK's release (the log says
which date and why; if that cannot resolve, today's resolution is tried). What got installed is recorded as a lock
(``uv pip freeze``) in the environment and under ``envs/.locks/{env_hash}.txt``: a rebuild of the same hash, after
``spaces gc`` or a restore, installs exactly those versions instead of resolving again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from builder import pythons
from builder.children import dying_with_platform, run_streamed
from builder.plan import BuildPlan, describe
from builder.releases import era_date, exclude_newer
from builder.requirements import PRE_REQUIREMENTS
from builder.uverrors import explain_install_failure, explain_venv_failure
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError
from spaces_runtime.logs import LogSink

MARKER = ".spaces-env.json"
LOCK = ".spaces-lock.txt"  # `uv pip freeze` of the finished environment
LOCKS_DIR = ".locks"  # under envs_dir: the locks outlive the environments they describe
# variables of the platform's own environment that would point uv at the wrong interpreter
_DROPPED_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME")


def python_in(env_dir: Path) -> Path:
    """The interpreter of a virtualenv built here."""
    return env_dir / "bin" / "python"


def compile_bytecode(env_dir: Path) -> subprocess.Popen[bytes] | None:
    """Bytecode for every module of a finished environment, written in the background at idle priority while
    its first app starts. A sandboxed app cannot write ``__pycache__`` into its environment (shared and
    read-only, so that no app can plant code in another's), so without this every exec'd start compiled all of
    Gradio again: 5.6 s vs 2.6 s unsandboxed, 0.96x once compiled (bench/bench_sandbox.py). In the background, not
    in the build: about 6 s of CPU per environment that a deploy need not wait for. ``-I -S``: no site, so none of
    the environment's .pth files run as the platform's user; compileall only compiles, never imports. Writes go
    through temporary names and renames, so a reader meanwhile sees a whole .pyc or none."""
    sites = sorted(env_dir.glob("lib/python*/site-packages"))
    if not sites:
        return None
    argv = ["nice", "-n", "19", str(python_in(env_dir)), "-I", "-S", "-m", "compileall", "-q",
            *map(str, sites)]  # one process: with -j, its pool's workers outlive a killed parent, blocked forever
    try:
        process = subprocess.Popen(dying_with_platform(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    except OSError:
        return None  # only slower starts
    threading.Thread(target=process.wait, daemon=True, name="compile-bytecode").start()
    return process


def is_complete(env_dir: Path) -> bool:
    return (env_dir / MARKER).is_file()


def find_uv() -> str:
    """The uv executable: the one shipped with the ``uv`` package if installed, else the one on PATH."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise BuildError("uv is not installed on this host, so environments cannot be built",
                         hint="install it with `pip install uv`")
    return found


def child_env(settings: Settings, inherited: Mapping[str, str]) -> dict[str, str]:
    """uv's environment: the platform's (PATH, HOME, proxies) minus virtualenv pointers, plus Settings."""
    env = {k: v for k, v in inherited.items() if k not in _DROPPED_VARS}
    env["NO_COLOR"] = "1"
    if settings.uv_cache_dir is not None:
        env["UV_CACHE_DIR"] = str(settings.uv_cache_dir)
    if settings.ca_bundle is not None:
        env["SSL_CERT_FILE"] = str(settings.ca_bundle)
    return env


class BuildJail(Protocol):
    """Where uv and the build code of every package it installs run (spaces_runtime.sandbox.buildjail): an
    unprivileged identity that sees the new environment and not the rest of the host. None: run as the platform."""

    def enter(self, scratch: Path) -> None: ...
    def seal(self, env_dir: Path) -> None: ...
    def environment(self, env: dict[str, str]) -> dict[str, str]: ...
    def wrap(self, argv: list[str], scratch: Path, readable: Sequence[Path]) -> list[str]: ...


@dataclass(frozen=True)
class Resolution:
    """How an environment's versions were chosen: "lock", "as of DATE", "today"; and the date when dated."""

    how: str
    as_of: datetime | None = None


class VenvBuilder:
    def __init__(self, envs_dir: Path, settings: Settings, environ: Mapping[str, str] | None = None,
                 jail: BuildJail | None = None) -> None:
        self.envs_dir = Path(envs_dir)
        self.settings = settings
        self.jail = jail
        # per build (builds of several spaces run at once): what its jailed uv may read besides its own folder
        self._readable: dict[Path, list[Path]] = {}
        # the platform's environment (PATH, HOME, proxies): where interpreters are looked for, what uv inherits
        self.environ = dict(os.environ if environ is None else environ)
        self.compiles: dict[Path, subprocess.Popen[bytes] | None] = {}  # env → its bytecode compile, while it runs

    def lock_path(self, env_hash: str) -> Path:
        return self.envs_dir / LOCKS_DIR / f"{env_hash}.txt"

    def stop_compile(self, env_dir: Path) -> None:
        """End the background bytecode compile of ``env_dir`` (``compile_bytecode``) now: before removing an
        environment this builder just made, whose ``__pycache__`` folders are still being written. Killed, not
        waited for: at idle priority on a busy host it can take minutes (an era test waited 264 s for one)."""
        process = self.compiles.pop(env_dir, None)
        if process is not None:
            process.kill()  # one that has ended already is left as it is
            with contextlib.suppress(subprocess.TimeoutExpired):  # gone in ms; a stuck one is not worth a failure
                process.wait(30)

    def build(self, plan: BuildPlan, log: LogSink) -> Path:
        """Blocking: the environment's folder, built now or reused. Raises BuildError naming what failed."""
        final = self.envs_dir / plan.env_hash
        if is_complete(final):
            log(f"==> reusing environment {plan.env_hash[:12]} (built before)")
            return final
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(plan.env_hash, log):
            if is_complete(final):
                log(f"==> reusing environment {plan.env_hash[:12]} (built by the build it waited for)")
                return final
            self._build_fresh(plan, final, log)
        return final

    @contextlib.contextmanager
    def _locked(self, env_hash: str, log: LogSink) -> Iterator[None]:
        # one open file per call: flock then excludes other threads of this process as well as other processes
        with open(self.envs_dir / f".{env_hash}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"==> waiting for another build of environment {env_hash[:12]}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build_fresh(self, plan: BuildPlan, final: Path, log: LogSink) -> None:
        self._remove_leftovers(plan.env_hash, final)
        scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{plan.env_hash}-", dir=self.envs_dir))
        started = time.monotonic()
        try:
            choice = self.interpreter(plan, log)
            self._readable[scratch] = [*_interpreter_dirs(choice), self.lock_path(plan.env_hash),
                                       *self._uv_pythons()]
            self._create(plan, choice, scratch, log)
            resolution = self._populate(plan, choice, scratch, log)
            lock = self._record_lock(plan, scratch)
            seconds = time.monotonic() - started
            _write_marker(scratch, plan, seconds, choice, resolution, lock)
            if self.jail is not None:
                self.jail.seal(scratch)
            os.rename(scratch, final)
            log(f"==> environment {plan.env_hash[:12]} ready in {seconds:.1f}s")
            self.compiles = {env: p for env, p in self.compiles.items() if p is not None and p.poll() is None}
            self.compiles[final] = compile_bytecode(final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            self._readable.pop(scratch, None)

    def interpreter(self, plan: BuildPlan, log: LogSink) -> pythons.Choice:
        """The host's interpreter for the plan's python_version, announced in the build log."""
        found = pythons.discover(self.settings, self.environ, pythons.uv_python_dir(find_uv(), self.environ))
        choice = pythons.choose(plan.python_version, found, origin=plan.python_origin,
                                nearest=self.settings.python_nearest, downloads=self.settings.python_downloads)
        log(f"==> {choice.note}")
        return choice

    def _populate(self, plan: BuildPlan, choice: pythons.Choice, scratch: Path, log: LogSink) -> Resolution:
        """Install the plan: from its recorded lock when there is one, else resolved (as of its era if dated)."""
        if self._install_lock(plan, scratch, log):
            return Resolution("lock")
        as_of = self._era_date(plan, log)
        try:
            self._install_all(plan, scratch, log, as_of)
        except BuildError as dated:
            if as_of is None:
                raise
            log(f"==> resolving as of {as_of:%Y-%m-%d} failed ({dated.summary or dated.message}); resolving as of "
                "today instead")
            shutil.rmtree(scratch)
            scratch.mkdir(mode=0o700)
            self._create(plan, choice, scratch, log)
            self._install_all(plan, scratch, log, None)
            return Resolution("today, after resolving as of its era failed")
        return Resolution(f"as of {as_of:%Y-%m-%dT%H:%M:%SZ}", as_of) if as_of else Resolution("today")

    def _install_all(self, plan: BuildPlan, scratch: Path, log: LogSink, as_of: datetime | None) -> None:
        if plan.pre_requirements:
            log(f"==> installing {len(plan.pre_requirements)} pre-requirement(s) from {PRE_REQUIREMENTS}")
            self._install(plan, plan.pre_requirements, scratch, log, as_of)
        if plan.requirements:
            log(f"==> installing {describe(plan.requirements, plan.sdk)}")
            self._install(plan, plan.requirements, scratch, log, as_of)

    def _era_date(self, plan: BuildPlan, log: LogSink) -> datetime | None:
        as_of, line = era_date(plan, self.settings.ca_bundle)
        log(line)
        return as_of

    def _install_lock(self, plan: BuildPlan, scratch: Path, log: LogSink) -> bool:
        """True when the versions recorded for this env hash were installed as they are."""
        saved = self.lock_path(plan.env_hash)
        if not saved.is_file():
            return False
        count = sum(1 for line in saved.read_text(encoding="utf-8").splitlines() if line and line[0] != "#")
        log(f"==> installing the {count} packages recorded when environment {plan.env_hash[:12]} was first "
            f"built ({saved})")
        code, lines = self._run([*self._pip_install(plan, scratch), "--no-deps", "-r", str(saved)], log, scratch)
        if code == 0:
            return True
        log(f"==> the recorded packages could not be installed ({lines[-1] if lines else 'uv failed'}); "
            "resolving again")
        return False

    def _record_lock(self, plan: BuildPlan, scratch: Path) -> Path:
        # stdout only: uv's "Using Python ..." note goes to stderr and is no requirement
        # in the jail too: uv runs the environment's own interpreter, where a package may have left a .pth
        argv, env = self._confined([find_uv(), "pip", "freeze", "--python", str(python_in(scratch))], scratch)
        done = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                              timeout=120, check=False)
        if done.returncode != 0:
            raise BuildError(f"could not record the environment's packages: {done.stderr.strip()[-500:]}")
        text = f"# environment {plan.env_hash}, recorded by spaces-runtime\n{done.stdout}"
        (scratch / LOCK).write_text(text, encoding="utf-8")
        saved = self.lock_path(plan.env_hash)
        saved.parent.mkdir(exist_ok=True)
        partial = saved.with_suffix(".tmp")
        partial.write_text(text, encoding="utf-8")
        partial.replace(saved)
        return saved

    def _remove_leftovers(self, env_hash: str, final: Path) -> None:
        """Scratch folders of builds that crashed, and an unfinished folder under the hash (we hold its lock)."""
        for stale in self.envs_dir.glob(f".tmp-{env_hash}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)

    def _create(self, plan: BuildPlan, choice: pythons.Choice, scratch: Path, log: LogSink) -> None:
        log(f"==> creating a Python {plan.python_version} virtualenv with uv")
        command = [find_uv(), "venv", "--relocatable", "--python", choice.uv_python, str(scratch)]
        if not self.settings.python_downloads:
            command.append("--no-python-downloads")
        if self.jail is not None:
            self.jail.enter(scratch)
        code, lines = self._run(command, log, scratch)
        if code != 0:
            raise explain_venv_failure(plan.python_version, lines, self.settings.python_version)

    def _pip_install(self, plan: BuildPlan, scratch: Path) -> list[str]:
        command = [find_uv(), "pip", "install", "--python", str(python_in(scratch))]
        if plan.index_url:
            command += ["--index-url", plan.index_url]
        if plan.extra_index_url:
            command += ["--extra-index-url", plan.extra_index_url]
        return command

    def _install(self, plan: BuildPlan, requirements: list[str], scratch: Path, log: LogSink,
                 as_of: datetime | None) -> None:
        listing = scratch / ".spaces-requirements.txt"
        listing.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        command = [*self._pip_install(plan, scratch), "-r", str(listing)]
        dated = exclude_newer(as_of)
        if dated is not None:
            command += ["--exclude-newer", dated]
        code, lines = self._run(command, log, scratch)
        if code != 0:
            raise explain_install_failure(requirements, plan.origins, lines)

    def _run(self, command: list[str], log: LogSink, scratch: Path) -> tuple[int, list[str]]:
        """Run uv on ``scratch``, handing each output line to ``log`` as it comes; the exit code and the last
        lines."""
        argv, env = self._confined(command, scratch)
        return run_streamed(argv, log, env)

    def _confined(self, command: list[str], scratch: Path) -> tuple[list[str], dict[str, str]]:
        """``command`` and its environment, in the build jail when there is one. The inherited environment
        carries PATH, HOME and proxy settings; configuration comes from Settings."""
        env = child_env(self.settings, self.environ)
        if self.jail is None:
            return command, env
        return self.jail.wrap(command, scratch, self._readable.get(scratch, [])), self.jail.environment(env)

    def _uv_pythons(self) -> list[Path]:
        """uv's own interpreters (``uv python dir``), when it has any: a jailed ``uv venv`` may look there."""
        found = pythons.uv_python_dir(find_uv(), self.environ) if self.jail is not None else None
        return [found] if found is not None else []


def _interpreter_dirs(choice: pythons.Choice) -> list[Path]:
    """The folders the chosen interpreter runs from (its installation's root, e.g. a uv-managed CPython)."""
    interpreter = choice.interpreter
    if interpreter is None:
        return []
    real = Path(interpreter.path).resolve()
    return [real.parent.parent] if real.parent.name == "bin" else [real.parent]


def _write_marker(env_dir: Path, plan: BuildPlan, seconds: float, choice: pythons.Choice,
                  resolution: Resolution, lock: Path) -> None:
    interpreter = choice.interpreter
    record = {
        "env_hash": plan.env_hash, "python_version": plan.python_version, "sdk": plan.sdk,
        "sdk_version": plan.sdk_version, "pre_requirements": plan.pre_requirements,
        "requirements": plan.requirements, "build_seconds": round(seconds, 2), "built_at": time.time(),
        "python": interpreter.full_version if interpreter else choice.request,
        "python_path": str(interpreter.path) if interpreter else None, "python_nearest": choice.nearest,
        "resolved": resolution.how, "era_rule": plan.era.rule if plan.era else None, "lock": str(lock),
    }
    (env_dir / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
