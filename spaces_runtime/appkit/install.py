"""The install of the app-side kit into app environments, and the env vars that point apps at the runner.

App environments have no platform dependencies, so the client (stdlib + numpy), its error tree and the
``spaces`` ZeroGPU shim are copied into ``{data_dir}/appkit`` and put on the app's PYTHONPATH (containers get
that directory mounted read-only). The shim comes with real package metadata (a ``spaces-*.dist-info``), because
Gradio asks ``importlib.metadata.version("spaces")`` on a Space, and apps may too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.runner.options import socket_path as runner_socket
from spaces_runtime.runner.tokens import app_token, read_secret

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # spaces_runtime/
# What apps import, relative to spaces_runtime/: stdlib + numpy only (install itself stays behind).
CLIENT_FILES = ("__init__.py", "errors.py", "client.py", "appkit/__init__.py", "appkit/wire.py",
                "appkit/address.py", "appkit/sync.py", "appkit/aio.py", "appkit/pipeline.py")
SHIM_FILES = ("__init__.py", "reloading.py")
# Gradio's Spaces reloader wants spaces >= 0.43.0 (gradio/utils.py, watchfn_spaces) and then imports
# spaces.reloading; the local label says this is the platform's stand-in, not Hugging Face's package.
SHIM_VERSION = "0.43.0+spaces.runtime"


def kit_dir(settings: Settings) -> Path:
    """Where the client and the ``spaces`` shim are copied for apps (mounted read-only into containers)."""
    return Path(settings.data_dir) / "appkit"


def materialise(dest: Path) -> Path:
    """Copy the client, the error tree and the ``spaces`` shim (with its metadata) into ``dest``; return the
    PYTHONPATH entry."""
    _folder(dest)
    for name in CLIENT_FILES:
        _folder((dest / "spaces_runtime" / name).parent)
        _copy_if_changed(PACKAGE_DIR / name, dest / "spaces_runtime" / name)
    _folder(dest / "spaces")
    for name in SHIM_FILES:
        _copy_if_changed(PACKAGE_DIR / "appkit" / "spaces" / name, dest / "spaces" / name)
    _write_metadata(dest)
    return dest


def _write_metadata(dest: Path) -> None:
    """``spaces-{SHIM_VERSION}.dist-info`` beside the shim: METADATA, INSTALLER and a RECORD of the shim's files,
    as an installer would write them; metadata of another shim version is removed (one version per name)."""
    info = dest / f"spaces-{SHIM_VERSION}.dist-info"
    for stale in dest.glob("spaces-*.dist-info"):
        if stale != info:
            shutil.rmtree(stale, ignore_errors=True)
    _folder(info)
    files = {
        "METADATA": (f"Metadata-Version: 2.1\nName: spaces\nVersion: {SHIM_VERSION}\n"
                     "Summary: spaces-runtime's stand-in for Hugging Face's `spaces` package (ZeroGPU decorator, "
                     "Gradio hooks), served by the platform's model runner\n"),
        "INSTALLER": "spaces-runtime\n",
    }
    for name, text in files.items():
        _write_if_changed(info / name, text.encode())
    listed = [f"spaces/{name}" for name in SHIM_FILES] + [f"{info.name}/{name}" for name in files]
    record = "".join(_record_line(dest, path) for path in listed) + f"{info.name}/RECORD,,\n"
    _write_if_changed(info / "RECORD", record.encode())


def _record_line(root: Path, relative: str) -> str:
    data = (root / relative).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}\n"


def _folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)  # containers read it as uid 1000, whatever the platform's umask


def _copy_if_changed(src: Path, dst: Path) -> None:
    _write_if_changed(dst, src.read_bytes())


def _write_if_changed(dst: Path, data: bytes) -> None:
    if not dst.exists() or dst.read_bytes() != data:
        tmp = dst.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        tmp.replace(dst)  # running apps never see a half-written file


def appkit_env(settings: Settings, app_id: str = "anonymous", *, socket_path: str | None = None,
               gpu: bool | None = None) -> dict[str, str]:
    """Env vars the supervisor adds to an app: PYTHONPATH with the client and shim, address and identity.

    ``socket_path`` overrides where the app sees the socket (a container's mount point). Prepend
    PYTHONPATH to any the app already has. ``gpu``: whether ``@spaces.GPU`` should take leases.
    """
    kit = materialise(kit_dir(settings))
    secret = read_secret(Path(settings.data_dir) / "runner.secret")
    url = f"unix://{socket_path or runner_socket(settings)}"
    on_gpu = gpu if gpu is not None else settings.runner_device == "cuda"
    return {"PYTHONPATH": str(kit), "SPACES_RUNNER_URL": url, "SPACES_RUNNER_TOKEN": app_token(secret, app_id),
            "SPACES_APP_ID": app_id, "SPACES_ZERO_GPU": "1" if on_gpu else "0"}
