"""The base image under every SDK image: SPACES_BASE_IMAGE when present or pullable, else one bootstrapped here.

Air-gapped hosts (no container registry) still have Debian packages, so ``bootstrap`` builds a minimal Debian
with Python by debootstrap and imports it as an image (about 40 s, once per machine). A file lock makes
concurrent builds bootstrap it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import docker
import docker.errors

from builder.docker.engine import find_build_cli, image_id
from builder.docker.render import BOOTSTRAP_BASE
from spaces_runtime.errors import BuildError
from spaces_runtime.logs import LogSink

SUITE = "bookworm"  # its python3 is 3.11, the platform's default Python
MIRROR = "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
_IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "LABEL spaces-runtime.kind=base",
    'CMD ["python3"]',
)
_TAIL = 40


def ensure_base_image(client: docker.DockerClient, wanted: str, log: LogSink, *,
                      work_dir: Path | None = None) -> str:
    """The name of a base image that exists locally now: ``wanted`` if present or pullable, else the
    bootstrapped one (built when missing)."""
    if image_id(client, wanted):
        log(f"==> base image {wanted} (present)")
        return wanted
    if _pull(client, wanted, log):
        return wanted
    with _lock(work_dir):
        if image_id(client, BOOTSTRAP_BASE):
            log(f"==> base image {BOOTSTRAP_BASE} (bootstrapped earlier; {wanted} cannot be pulled)")
            return BOOTSTRAP_BASE
        log(f"==> {wanted} cannot be pulled; bootstrapping {BOOTSTRAP_BASE} from Debian packages (once)")
        return bootstrap(BOOTSTRAP_BASE, log, work_dir=work_dir)


def _pull(client: docker.DockerClient, name: str, log: LogSink) -> bool:
    try:
        client.images.pull(name)
    except docker.errors.APIError as exc:
        log(f"    pull {name}: {exc.explanation or exc}")
        return False
    log(f"==> base image {name} (pulled)")
    return True


@contextlib.contextmanager
def _lock(work_dir: Path | None) -> Iterator[None]:
    path = Path(work_dir or tempfile.gettempdir()) / "spaces-runtime-base.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def bootstrap(tag: str, log: LogSink, *, work_dir: Path | None = None, mirror: str = MIRROR) -> str:
    """debootstrap a minimal Debian with Python into a scratch folder and ``docker import`` it as ``tag``."""
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise BuildError("cannot bootstrap a base image: debootstrap is not installed",
                         hint="apt-get install debootstrap, or set SPACES_BASE_IMAGE to a local image")
    cli = find_build_cli()
    with tempfile.TemporaryDirectory(prefix="spaces-base-", dir=work_dir) as scratch:
        rootfs = Path(scratch, "rootfs")
        _run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(rootfs), mirror],
             "debootstrap", log)
        # apt's downloaded .debs and lists are build leftovers, not part of the image
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        changes = [arg for change in _IMPORT_CHANGES for arg in ("--change", change)]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            _run([cli.docker, "import", *changes, "-", tag], "docker import", log, stdin=tar.stdout)
        finally:
            if tar.stdout:
                tar.stdout.close()
            tar.wait()
    log(f"==> base image {tag} bootstrapped")
    return tag


def _run(argv: list[str], what: str, log: LogSink, stdin: IO[bytes] | None = None) -> None:
    lines: list[str] = []
    process = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace")
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        log(f"    {lines[-1]}")
    if process.wait() != 0:
        raise BuildError(f"bootstrapping the base image failed at {what} (exit code {process.returncode})",
                         log_tail="\n".join(lines[-_TAIL:]),
                         hint="check that the Debian mirror is reachable, or set SPACES_BASE_IMAGE")
