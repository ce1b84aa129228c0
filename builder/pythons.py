"""Which Python interpreters this host has, and which one an app's ``python_version`` gets.

``discover`` looks where interpreters live: the operator's list (SPACES_PYTHONS), PATH, uv's managed installs
(``uv python dir``), pyenv/asdf roots, /usr/local/bin, /usr/bin and /opt/python. It runs each candidate once (cached
by path and mtime) to read its real version, because names lie: a pyenv shim named python3.12 may exit 127. ``choose``
is pure: the request and what was found → the interpreter and the sentence the build log shows, or a BuildError that
names the request, what the host has and how to add one. Nothing is downloaded unless the operator allows it
(SPACES_PYTHON_DOWNLOADS), and then only when no installed interpreter matches.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError

_NAME = re.compile(r"^python3(\.\d{1,2})?$")
# asks a candidate for the facts that matter; the base executable, so that a virtualenv's python counts as the
# interpreter it was made from
_INSPECT = ("import json, os, sys, sysconfig; print(json.dumps({'version': list(sys.version_info[:3]), "
            "'base': os.path.realpath(getattr(sys, '_base_executable', '') or sys.executable), "
            "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), 'implementation': "
            "sys.implementation.name}))")
_INSPECT_TIMEOUT_S = 10
OPERATOR = "SPACES_PYTHONS"


@dataclass(frozen=True)
class Interpreter:
    path: Path  # the real file (symlinks resolved)
    version: tuple[int, int, int]
    source: str  # where it was found: "SPACES_PYTHONS", "PATH", "uv", "/root/.pyenv/versions", ...

    @property
    def minor_version(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def full_version(self) -> str:
        return ".".join(str(part) for part in self.version)


@dataclass(frozen=True)
class Choice:
    """The interpreter for a build (None: uv downloads ``request``, which the operator allowed) and why."""

    request: str
    interpreter: Interpreter | None
    note: str  # one build-log sentence
    nearest: bool = False  # True: not the version asked for (SPACES_PYTHON_NEAREST)

    @property
    def uv_python(self) -> str:
        """What ``uv venv --python`` gets: a path, so uv never goes looking (or downloading) by itself."""
        return str(self.interpreter.path) if self.interpreter else self.request


# --- choosing (pure) -------------------------------------------------------------------------------------
def parse_request(request: str) -> tuple[int, ...]:
    return tuple(int(part) for part in request.strip().split("."))


def choose(request: str, found: Iterable[Interpreter], *, origin: str, nearest: bool = False,
           downloads: bool = False) -> Choice:
    """The interpreter for ``request`` ("3.12" or "3.12.1"): the newest of that minor version, the exact patch
    release when asked for and present. ``origin`` says where the request came from, for the log and errors."""
    wanted = parse_request(request)
    found = sorted(set(found), key=lambda i: (i.version, _rank(i.source)), reverse=True)
    same_minor = [i for i in found if i.version[:2] == wanted[:2]]
    exact = [i for i in same_minor if len(wanted) < 3 or i.version == wanted]
    if exact:
        return Choice(request, exact[0], f"Python {exact[0].full_version} ({exact[0].path}, found in "
                                         f"{exact[0].source}) for python_version {request}, {origin}")
    if same_minor:
        pick = same_minor[0]
        return Choice(request, pick, f"Python {pick.full_version} ({pick.path}) for python_version {request}, "
                                     f"{origin}: {request} itself is not installed and patch releases of "
                                     f"{pick.minor_version} are compatible")
    if downloads:
        return Choice(request, None, f"Python {request} for python_version, {origin}: not installed here, so uv "
                                     "downloads it (SPACES_PYTHON_DOWNLOADS=true)")
    if nearest and found:
        pick = min(found, key=lambda i: (abs(i.version[1] - wanted[1]), -i.version[1]))
        return Choice(request, pick, f"WARNING: Python {request} ({origin}) is not installed here; using the "
                                     f"nearest, Python {pick.full_version} ({pick.path}), because "
                                     "SPACES_PYTHON_NEAREST=true", nearest=True)
    raise missing(request, origin, found)


def for_image(request: str, base_minor: str, found: Iterable[Interpreter], *, origin: str,
              nearest: bool = False) -> Choice:
    """The Python of an image whose base has ``base_minor``: that one when asked for (``interpreter`` None: nothing
    to copy in); else the host's interpreter of the minor asked for (to be copied in); else, with
    ``nearest``, whichever of the base's and the host's is nearest — the base's on a tie, as it needs no copy."""
    if parse_request(request)[:2] == parse_request(base_minor)[:2]:
        return Choice(request, None, f"Python {base_minor}, the base image's, for python_version {request}, {origin}")
    found = list(found)
    if not nearest or any(i.version[:2] == parse_request(request)[:2] for i in found):
        return choose(request, found, origin=origin)
    wanted = parse_request(request)[1]
    base = parse_request(base_minor)[1]
    host = choose(request, found, origin=origin, nearest=True) if found else None
    if host is None or host.interpreter is None or abs(base - wanted) <= abs(host.interpreter.version[1] - wanted):
        return Choice(base_minor, None, f"WARNING: Python {request} ({origin}) is not installed here; using the "
                                        f"nearest, Python {base_minor} of the base image, because "
                                        "SPACES_PYTHON_NEAREST=true", nearest=True)
    return replace(host, request=host.interpreter.minor_version)


def missing(request: str, origin: str, found: list[Interpreter]) -> BuildError:
    have = ", ".join(sorted({i.full_version for i in found}, key=parse_request)) or "none"
    return BuildError(
        f"python_version {request} ({origin}) is not installed on this host, and the platform does not download "
        f"interpreters; this host has Python {have}",
        hint=f"set python_version in README.md to one of those, or have the operator add Python {request}: "
             f"install it (`uv python install {request}`, `pyenv install {request}` or a distribution package) "
             f"and list it in {OPERATOR} (colon-separated interpreters or folders), or set "
             "SPACES_PYTHON_NEAREST=true to use the nearest version, or SPACES_PYTHON_DOWNLOADS=true to let uv "
             "download it")


def _rank(source: str) -> int:
    """Ties between equal versions go to the operator's list, then uv's own installs, then the rest."""
    return {OPERATOR: 2, "uv": 1}.get(source, 0)


# --- finding (I/O) -----------------------------------------------------------------------------------------
def discover(settings: Settings, environ: Mapping[str, str] | None = None,
             uv_dir: Path | None = None) -> list[Interpreter]:
    """Every working CPython 3 on this host (free-threaded builds left out), one entry per real file."""
    env = os.environ if environ is None else environ
    found: dict[Path, Interpreter] = {}
    for path, source in candidates(settings, env, uv_dir):
        interpreter = inspect(path, source)
        if interpreter is not None and interpreter.path not in found:
            found[interpreter.path] = interpreter
    return sorted(found.values(), key=lambda i: i.version)


def candidates(settings: Settings, environ: Mapping[str, str], uv_dir: Path | None) -> list[tuple[Path, str]]:
    """Files that may be interpreters, first-found first (the operator's list leads)."""
    home = Path(environ.get("HOME") or Path.home())
    out: list[tuple[Path, str]] = []
    for listed in settings.pythons:
        out += [(path, OPERATOR) for path in _in_folder_or_file(Path(listed))]
    for entry in environ.get("PATH", "").split(os.pathsep):
        if entry and Path(entry).name != "shims":  # pyenv's shims only forward to versions/, often failing
            out += [(path, "PATH") for path in _named_pythons(Path(entry))]
    for root in _roots(home, environ, uv_dir):
        for folder in sorted(root.glob("*/bin")) if root.name != "bin" else [root]:
            out += [(path, "uv" if root == uv_dir else str(root)) for path in _named_pythons(folder)]
    return out


def _roots(home: Path, environ: Mapping[str, str], uv_dir: Path | None) -> list[Path]:
    pyenv = Path(environ["PYENV_ROOT"]) / "versions" if environ.get("PYENV_ROOT") else None
    roots = [uv_dir, pyenv, home / ".pyenv" / "versions", Path("/root/.pyenv/versions"),
             home / ".asdf" / "installs" / "python", Path("/opt/python"), Path("/usr/local/bin"), Path("/usr/bin")]
    return [root for root in dict.fromkeys(roots) if root is not None and _readable_dir(root)]


def _in_folder_or_file(entry: Path) -> list[Path]:
    if entry.is_file():
        return [entry]
    if (entry / "bin").is_dir():
        return _named_pythons(entry / "bin")
    direct = _named_pythons(entry)
    return direct or [p for folder in sorted(entry.glob("*/bin")) for p in _named_pythons(folder)]


def _named_pythons(folder: Path) -> list[Path]:
    if not _readable_dir(folder):
        return []
    try:
        names = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    except OSError:
        return []
    return [p for p in names if p.is_file() and os.access(p, os.X_OK)]


def _readable_dir(folder: Path) -> bool:
    try:
        return folder.is_dir() and os.access(folder, os.R_OK | os.X_OK)
    except OSError:
        return False


def inspect(path: Path, source: str) -> Interpreter | None:
    """The interpreter behind ``path``, or None when it does not run as a CPython 3 (a dead shim, a broken
    symlink, PyPy, a free-threaded build)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    facts = _facts(str(path), stat.st_mtime_ns, stat.st_ino)
    if facts is None:
        return None
    version, base = facts
    return Interpreter(path=Path(base), version=version, source=source)


@cache
def _facts(path: str, mtime_ns: int, inode: int) -> tuple[tuple[int, int, int], str] | None:
    """(version, real base executable) of a CPython 3 with the GIL, else None. Cached per file version:
    discovery runs on every build, interpreters change rarely."""
    try:
        done = subprocess.run([path, "-I", "-c", _INSPECT], capture_output=True, text=True,
                              timeout=_INSPECT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        major, minor, micro = (int(v) for v in facts["version"])
        usable = facts["implementation"] == "cpython" and not facts["free_threaded"] and major == 3
        return ((major, minor, micro), str(facts["base"])) if usable else None
    except (ValueError, IndexError, KeyError, TypeError):
        return None


def uv_python_dir(uv: str, environ: Mapping[str, str]) -> Path | None:
    """Where uv keeps the interpreters it installed (``uv python dir``; honours UV_PYTHON_INSTALL_DIR)."""
    try:
        done = subprocess.run([uv, "python", "dir"], capture_output=True, text=True, timeout=10, check=False,
                              env=dict(environ), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    folder = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return folder if folder is not None and folder.is_dir() else None
