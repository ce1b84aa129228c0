"""The command line and environment that start an app as a local process (pure).

Gradio reads its server settings from GRADIO_* variables, so ``demo.launch()`` needs no change; Streamlit takes
flags. Both are told the path prefix the gateway serves them under, so the links they render point back through
the gateway. Which variables and flags an SDK version reads comes from ``spaces_runtime.sdk_eras``.
"""

from __future__ import annotations

from pathlib import Path

from spaces_runtime import sdk_eras
from spaces_runtime.errors import BackendError
from spaces_runtime.supervisor.backend import LaunchSpec

# What the app keeps from the platform's own environment: enough for locale and temp files, nothing secret.
_INHERITED = ("LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def process_command(spec: LaunchSpec, port: int, python: Path, inherited: dict[str, str] | None = None,
                    host: str = "127.0.0.1") -> tuple[list[str], dict[str, str]]:
    """argv and environment for running ``spec`` on ``host``:``port`` with the interpreter ``python``.

    ``inherited`` is the platform's environment (the caller passes ``os.environ``); only a few harmless keys of
    it reach the app. ``host``: 0.0.0.0 inside a sandbox's own network namespace, as on Hugging Face.
    """
    env = {key: value for key, value in (inherited or {}).items() if key in _INHERITED}
    env.update(_base_env(spec, port, python))
    if spec.sdk == "gradio":
        env.update(_gradio_env(spec, port, host))
        return [str(python), spec.app_file], env
    if spec.sdk == "streamlit":
        env.update(sdk_eras.STREAMLIT_ENV)
        return [str(python), "-m", "streamlit", "run", spec.app_file, *_streamlit_flags(spec, port, host)], env
    raise BackendError(f"the process backend runs gradio and streamlit apps, not sdk '{spec.sdk}'",
                       hint="deploy docker apps with `spaces serve --backend docker`")


def _base_env(spec: LaunchSpec, port: int, python: Path) -> dict[str, str]:
    venv = python.parent.parent
    env = {
        "HOME": str(spec.app_dir),
        "PATH": f"{python.parent}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "PYTHONUNBUFFERED": "1",
        "PORT": str(port),
    }
    env.update(spec.env)
    return env


def _gradio_env(spec: LaunchSpec, port: int, host: str) -> dict[str, str]:
    return sdk_eras.gradio_env(spec.sdk_version, host=host, port=port, root_path=spec.base_path)


def _streamlit_flags(spec: LaunchSpec, port: int, host: str) -> list[str]:
    # XSRF and CORS protection stay on: the gateway passes Host, Origin and cookies through unchanged, so the
    # app sees same-origin requests exactly as it would without a proxy.
    return sdk_eras.streamlit_flags(spec.sdk_version, host=host, port=port, base_path=spec.base_path)
