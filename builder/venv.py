"""BuildPlan → a uv virtualenv at ``envs_dir/{env_hash}``, built once and reused.

A build goes into a temporary folder that is renamed into place only when complete (the marker file is written
last), so a crash never leaves a half-built environment under the hash. A file lock (fcntl.flock) per hash makes
concurrent builds of the same environment, in threads or in processes, build it once. The virtualenv is created
``--relocatable`` because it is built under another name than the one it is used from.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path

from builder.plan import BuildPlan, describe
from builder.requirements import PRE_REQUIREMENTS
from builder.uverrors import explain_install_failure, explain_venv_failure
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError
from spaces_runtime.logs import LogSink

MARKER = ".spaces-env.json"
# variables of the platform's own environment that would point uv at the wrong interpreter
_DROPPED_VARS = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME")


def python_in(env_dir: Path) -> Path:
    """The interpreter of a virtualenv built here."""
    return env_dir / "bin" / "python"


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


class VenvBuilder:
    def __init__(self, envs_dir: Path, settings: Settings) -> None:
        self.envs_dir = Path(envs_dir)
        self.settings = settings

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
            self._create(plan, scratch, log)
            if plan.pre_requirements:
                log(f"==> installing {len(plan.pre_requirements)} pre-requirement(s) from {PRE_REQUIREMENTS}")
                self._install(plan, plan.pre_requirements, scratch, log)
            if plan.requirements:
                log(f"==> installing {describe(plan.requirements, plan.sdk)}")
                self._install(plan, plan.requirements, scratch, log)
            seconds = time.monotonic() - started
            _write_marker(scratch, plan, seconds)
            os.rename(scratch, final)
            log(f"==> environment {plan.env_hash[:12]} ready in {seconds:.1f}s")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise

    def _remove_leftovers(self, env_hash: str, final: Path) -> None:
        """Scratch folders of builds that crashed, and an unfinished folder under the hash (we hold its lock)."""
        for stale in self.envs_dir.glob(f".tmp-{env_hash}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)

    def _create(self, plan: BuildPlan, scratch: Path, log: LogSink) -> None:
        log(f"==> creating a Python {plan.python_version} virtualenv with uv")
        command = [find_uv(), "venv", "--relocatable", "--python", plan.python_version, str(scratch)]
        code, lines = self._run(command, log)
        if code != 0:
            raise explain_venv_failure(plan.python_version, lines, self.settings.python_version)

    def _install(self, plan: BuildPlan, requirements: list[str], scratch: Path, log: LogSink) -> None:
        listing = scratch / ".spaces-requirements.txt"
        listing.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        command = [find_uv(), "pip", "install", "--python", str(python_in(scratch)), "-r", str(listing)]
        if plan.index_url:
            command += ["--index-url", plan.index_url]
        if plan.extra_index_url:
            command += ["--extra-index-url", plan.extra_index_url]
        code, lines = self._run(command, log)
        if code != 0:
            raise explain_install_failure(requirements, plan.origins, lines)

    def _run(self, command: list[str], log: LogSink) -> tuple[int, list[str]]:
        """Run uv, handing each output line to ``log`` as it comes; the exit code and the last lines."""
        recent: deque[str] = deque(maxlen=200)
        # the inherited environment carries PATH, HOME and proxy settings; configuration comes from Settings
        env = child_env(self.settings, os.environ)
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              text=True, errors="replace", bufsize=1, env=env) as process:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                recent.append(line)
                log(line)
            code = process.wait()
        return code, list(recent)


def _write_marker(env_dir: Path, plan: BuildPlan, seconds: float) -> None:
    record = {
        "env_hash": plan.env_hash, "python_version": plan.python_version, "sdk": plan.sdk,
        "sdk_version": plan.sdk_version, "pre_requirements": plan.pre_requirements,
        "requirements": plan.requirements, "build_seconds": round(seconds, 2), "built_at": time.time(),
    }
    (env_dir / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
