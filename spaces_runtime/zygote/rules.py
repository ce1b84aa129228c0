"""The zygotes' pure rules: what each SDK's zygote imports, which zygote a launch forks from or why it is exec'd
instead, what in an environment rules a zygote out, and the id maps of a zygote's user namespace. The processes
themselves are ``pool``'s."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

# what each SDK's zygote imports; Streamlit's server modules are what `streamlit run` spends its start on
PRELOAD = {
    "gradio": ("gradio",),
    "streamlit": (
        "streamlit",
        "streamlit.web.cli",
        "streamlit.web.bootstrap",
        "streamlit.web.server",
        "streamlit.runtime.scriptrunner",
    ),
}
# what Gradio 6.31 imports only in an app's Blocks build and launch() (measured by diffing sys.modules around
# them: 0.34 s -> 0.22 s in the child); none starts a thread at import. Optional: another version may lack one
WARM = {
    "gradio": (
        "pydantic.v1",
        "gradio.http_server",
        "uvicorn.main",
        "uvicorn.config",
        "uvicorn.server",
        "uvicorn.lifespan.on",
        "uvicorn.loops.auto",
        "uvicorn.loops.asyncio",
        "uvicorn.protocols.http.auto",
        "uvicorn.protocols.http.h11_impl",
        "uvicorn.middleware.proxy_headers",
        "anyio._backends._asyncio",
        "starlette.middleware.cors",
        "logging.config",
        "logging.handlers",
        "encodings.idna",
        "multiprocessing.connection",
    ),
}
# variable prefixes an SDK (or huggingface_hub under it) may read at import: a space setting one gets an exec
IMPORT_PREFIXES = ("HF_", "HUGGINGFACE_", "GRADIO_", "STREAMLIT_", "PYTHON")
PER_LAUNCH = ("GRADIO_ROOT_PATH",)  # read by launch(), not at import, and different for every space


def id_map(own: int, base: int, count: int) -> str:
    """A zygote's uid_map (and gid_map) (pure): 0 inside is ``own`` outside, and the apps' ids [base,
    base+count) are themselves, except ``own`` (the kernel refuses overlapping ranges)."""
    lines = [f"0 {own} 1"]
    end = base + count
    for first, last in ((base, min(own, end)), (max(base, own + 1), end)):
        if last > first:
            lines.append(f"{first} {first} {last - first}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ZygoteKey:
    python: str
    sdk: str
    env: tuple[tuple[str, str], ...]  # the environment the SDK is imported with


def plan_fork(space_env: dict[str, str], sdk: str, argv: list[str], env: dict[str, str]) -> ZygoteKey | str:
    """The zygote an app launched as ``argv`` with ``env`` forks from, or why it is exec'd instead (pure).
    ``space_env``: what the space itself adds (variables, secrets, runner address); only PYTHONPATH of it (the
    appkit, the same for every space) reaches the zygote."""
    sensitive = sorted(k for k in space_env if k.startswith(IMPORT_PREFIXES) and k != "PYTHONPATH")
    if sensitive:
        return f"the space sets {', '.join(sensitive)}, which the SDK may read at import"
    if sdk not in PRELOAD:
        return f"there is no zygote for sdk '{sdk}'"
    shared = {k: v for k, v in env.items() if (k not in space_env or k == "PYTHONPATH") and k not in PER_LAUNCH}
    return ZygoteKey(python=argv[0], sdk=sdk, env=tuple(sorted(shared.items())))


def startup_code(python: Path) -> str | None:
    """What in the environment runs at every interpreter start or comes from outside the index, which an exec'd
    app runs inside its sandbox but a zygote would run as root before any sandbox exists: a .pth file with an
    import line, a sitecustomize/usercustomize module, a distribution installed from a URL or a path. None for
    an environment of index packages only (what remains is the code of index packages the SDK imports)."""
    for site in sorted(python.parent.parent.glob("lib/python*/site-packages")):
        for pth in sorted(site.glob("*.pth")):
            with contextlib.suppress(OSError):
                if any(
                    line.startswith(("import ", "import\t")) for line in pth.read_text(errors="replace").splitlines()
                ):
                    return f"{pth.name} in the environment runs code at every start"
        for name in ("sitecustomize.py", "usercustomize.py"):
            if (site / name).exists():
                return f"{name} in the environment runs code at every start"
        direct = sorted(record.parent.name.split("-")[0] for record in site.glob("*.dist-info/direct_url.json"))
        if direct:
            return f"{', '.join(direct)} came from a URL or a path, not the package index"
    return None
