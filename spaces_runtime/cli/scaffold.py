"""`spaces init DIR --sdk X`: a new app folder rendered from templates/scaffolds/X with Jinja2."""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from spaces_runtime.config import Settings, templates_dir
from spaces_runtime.errors import SpacesError

SDKS = ("gradio", "streamlit", "docker", "static")


def scaffold(folder: Path, sdk: str, settings: Settings) -> list[str]:
    if sdk not in SDKS:
        raise SpacesError(f"sdk {sdk!r} is not one of {', '.join(SDKS)}", hint="pass --sdk gradio, for example")
    if folder.exists() and any(folder.iterdir()):
        raise SpacesError(f"{folder} already exists and is not empty", hint="choose a new folder name")
    source = templates_dir() / "scaffolds" / sdk
    name = re.sub(r"[^a-z0-9\-_.]", "-", folder.resolve().name.lower()).strip("-._") or "app"
    context = {
        "name": name,
        "title": name.replace("-", " ").replace("_", " ").title(),
        "sdk": sdk,
        "sdk_version": {"gradio": settings.default_gradio_version,
                        "streamlit": settings.default_streamlit_version}.get(sdk, ""),
    }
    jinja = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    created = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(jinja.from_string(path.read_text()).render(**context))
        created.append(str(relative))
    return created
