"""What every app gets from the runner: its address, a signed identity, and an importable client + `spaces` shim.

The app's environment has no platform dependencies, so the client (stdlib + numpy) and the ``spaces``
ZeroGPU shim are copied into ``{data_dir}/appkit`` and put on the app's PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # spaces_runtime/
CLIENT_FILES = ("__init__.py", "errors.py", "client.py")
ADMIN = "@admin"


def read_secret(path: Path) -> bytes:
    """The runner's signing key, made on first use and readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def app_token(secret: bytes, app_id: str) -> str:
    """``{app_id}.{signature}``: the runner learns who calls from the token, not from a claim."""
    sig = hmac.new(secret, app_id.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{app_id}.{sig}"


def verify_token(secret: bytes, token: str) -> str | None:
    """The app id a token was issued for, or None when it was not signed with ``secret``."""
    app_id, _, _ = token.rpartition(".")
    if not app_id or not hmac.compare_digest(app_token(secret, app_id), token):
        return None
    return app_id


def materialise(dest: Path) -> Path:
    """Copy the client, the error tree and the ``spaces`` shim into ``dest``; return the PYTHONPATH entry."""
    pkg = dest / "spaces_runtime"
    pkg.mkdir(parents=True, exist_ok=True)
    for folder in (dest, pkg):
        os.chmod(folder, 0o755)  # containers read it as uid 1000, whatever the platform's umask
    for name in CLIENT_FILES:
        _copy_if_changed(PACKAGE_DIR / name, pkg / name)
    shim = dest / "spaces"
    shim.mkdir(exist_ok=True)
    os.chmod(shim, 0o755)
    _copy_if_changed(PACKAGE_DIR / "appkit" / "spaces" / "__init__.py", shim / "__init__.py")
    return dest


def _copy_if_changed(src: Path, dst: Path) -> None:
    if not dst.exists() or dst.read_bytes() != src.read_bytes():
        tmp = dst.with_suffix(".tmp")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        tmp.replace(dst)  # running apps never see a half-written file


def socket_path(settings: Any) -> Path:
    """The runner's socket, alone in a directory of its own (``{data_dir}/runner/`` by default): that directory is
    what containers get mounted, so it must never show an app the platform's data. An explicit
    ``runner_socket`` is taken as given: put it in a directory of its own."""
    return Path(settings.runner_socket_path)


def runner_url(settings: Any) -> str:
    return f"unix://{socket_path(settings)}"


def kit_dir(settings: Any) -> Path:
    """Where the client and the ``spaces`` shim are copied for apps (mounted read-only into containers)."""
    return Path(settings.data_dir) / "appkit"


def appkit_env(settings: Any, app_id: str = "anonymous", *, socket_path: str | None = None,
               gpu: bool | None = None) -> dict[str, str]:
    """Env vars the supervisor adds to an app: PYTHONPATH with the client and shim, address and identity.

    ``socket_path`` overrides where the app sees the socket (a container's mount point). Prepend
    PYTHONPATH to any the app already has. ``gpu``: whether ``@spaces.GPU`` should take leases.
    """
    data_dir = Path(settings.data_dir)
    kit = materialise(kit_dir(settings))
    secret = read_secret(data_dir / "runner.secret")
    url = f"unix://{socket_path}" if socket_path else runner_url(settings)
    on_gpu = gpu if gpu is not None else settings.runner_device == "cuda"
    return {"PYTHONPATH": str(kit), "SPACES_RUNNER_URL": url, "SPACES_RUNNER_TOKEN": app_token(secret, app_id),
            "SPACES_APP_ID": app_id, "SPACES_ZERO_GPU": "1" if on_gpu else "0"}


def admin_token(settings: Any) -> str:
    """For the platform itself (REST API, `spaces models`): may set quotas and unload models."""
    return app_token(read_secret(Path(settings.data_dir) / "runner.secret"), ADMIN)
