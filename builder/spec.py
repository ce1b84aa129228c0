"""An app folder → AppSpec: README front matter (Hugging Face's keys) plus the requirement files.

``load`` only reads the folder; every problem is a SpecError (or NoAppFileError) naming the file and line and
saying what to write instead, e.g. ``README.md line 3: sdk 'gradoi' is not one of gradio, streamlit, ...``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from builder import frontmatter, keys
from builder.frontmatter import README, Entry, FrontMatter
from builder.requirements import (
    PACKAGES,
    PRE_REQUIREMENTS,
    REQUIREMENTS,
    read_lines,
    read_requirements,
    read_text,
)
from spaces_runtime.errors import NoAppFileError, SpecError

DEFAULT_EMOJI = "🚀"
DEFAULT_PORT = 7860
# the file each SDK runs when app_file is not given; streamlit also looks for streamlit_app.py
DEFAULT_APP_FILES = {
    "gradio": ("app.py",),
    "streamlit": ("app.py", "streamlit_app.py"),
    "static": ("index.html",),
    "docker": ("Dockerfile",),
}
_IMPORT = re.compile(r"^\s*(?:import|from)\s+(gradio|streamlit)\b", re.MULTILINE)


@dataclass(frozen=True)
class AppSpec:
    """What an app folder asks for.

    Fields (README key in brackets when it differs):
      folder; title; emoji; color_from [colorFrom]; color_to [colorTo]; sdk (gradio|streamlit|docker|static);
      sdk_version (None: the platform's default); python_version (None: the platform's default);
      app_file (relative to folder); app_port; short_description; pinned; tags; models; license;
      startup_duration_timeout (seconds, from "30m"/"1h"; None: the platform's default);
      full_width [fullWidth]; header (mini|default); disable_embedding; custom_headers; runner_models;
      suggested_hardware (a tier's name); replicas (1..16, the swarm backend's tasks);
      extra (unknown keys, kept as written); warnings (human-readable, e.g. unknown keys);
      requirements / pre_requirements / packages (lines of requirements.txt, pre-requirements.txt,
      packages.txt without comments) and *_lines (the file's line number of each entry, same order);
      readme_body (the README after the front matter); detected (True: no front matter, sdk inferred from code).
    """

    folder: Path
    title: str
    sdk: str
    app_file: str
    emoji: str = DEFAULT_EMOJI
    color_from: str = "blue"
    color_to: str = "indigo"
    sdk_version: str | None = None
    python_version: str | None = None
    app_port: int = DEFAULT_PORT
    short_description: str | None = None
    pinned: bool = False
    tags: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    license: str | None = None
    startup_duration_timeout: float | None = None
    full_width: bool = False
    header: str = "default"
    disable_embedding: bool = False
    custom_headers: dict[str, str] = field(default_factory=dict)
    runner_models: list[dict[str, Any]] = field(default_factory=list)  # model files the runner serves
    suggested_hardware: str | None = None  # a hardware tier's name; spaces settings --hardware overrides it
    replicas: int | None = None  # swarm backend: how many tasks serve it (spaces settings --replicas overrides it)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    requirement_lines: list[int] = field(default_factory=list)
    pre_requirements: list[str] = field(default_factory=list)
    pre_requirement_lines: list[int] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    package_lines: list[int] = field(default_factory=list)
    readme_body: str = ""
    detected: bool = False


def detect_defaults(folder_name: str) -> dict[str, str]:
    """HF-like defaults from the folder name: a title ("my_cool-app" → "My Cool App"), the rocket emoji, and
    gradient colours picked from the name so that cards in a gallery differ but stay the same across deploys."""
    words = [w for w in re.split(r"[-_\s]+", folder_name.strip()) if w]
    title = " ".join(w[:1].upper() + w[1:] for w in words) or "Untitled"
    digest = hashlib.sha256(folder_name.encode()).digest()
    color_from = keys.COLORS[digest[0] % len(keys.COLORS)]
    color_to = keys.COLORS[(digest[0] + 1 + digest[1] % (len(keys.COLORS) - 1)) % len(keys.COLORS)]
    return {"title": title, "emoji": DEFAULT_EMOJI, "color_from": color_from, "color_to": color_to}


def load(folder: Path, name: str | None = None) -> AppSpec:
    """Read and check an app folder. ``name`` (the space's name) gives the default title and colours; without it,
    the folder's name does (an uploaded folder's name is an internal version number)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoAppFileError(f"{folder} is not a folder; pass the folder that holds app.py and README.md",
                             file=str(folder))
    front = _read_front_matter(folder)
    fields, warnings, extra = _check_entries(front.entries)
    if "sdk" not in fields:
        fields["sdk"] = _infer_sdk(folder, front)
        if front.present:
            warnings.append(f"README.md: no 'sdk' key; running as {fields['sdk']} because the code imports it "
                            f"(add 'sdk: {fields['sdk']}' to the front matter)")
        else:
            warnings.append(f"README.md has no front matter; running as {fields['sdk']}, detected from "
                            f"{_detected_from(folder, fields['sdk'])} (start README.md with '---', "
                            f"'sdk: {fields['sdk']}', '---' to say so)")
    fields["app_file"] = _find_app_file(folder, fields["sdk"], fields.get("app_file"), front.entries)
    _check_model_files(folder, fields.get("runner_models", []), front.entries)
    defaults = detect_defaults(name or folder.resolve().name)
    return AppSpec(folder=folder, **{**defaults, **fields}, **_requirement_fields(folder),
                   extra=extra, warnings=warnings + _length_warnings(fields),
                   readme_body=front.body, detected=not front.present)


def _check_model_files(folder: Path, models: list[dict[str, Any]], entries: dict[str, Entry]) -> None:
    for model in models:
        line = entries["runner_models"].line
        relative = _inside(folder, model["file"], line, key="runner_models file")
        if not (folder / relative).is_file():
            raise SpecError(f"runner_models: model '{model['name']}' names file '{model['file']}', which is not in "
                            "the app folder", file=README, line=line,
                            hint="give its path relative to the folder, e.g. model/classifier.pt")


def _read_front_matter(folder: Path) -> FrontMatter:
    text = read_text(folder, README)
    return FrontMatter() if text is None else frontmatter.parse(text)


def _check_entries(entries: dict[str, Entry]) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    fields: dict[str, Any] = {}
    warnings: list[str] = []
    extra: dict[str, Any] = {}
    for key, entry in entries.items():
        if key in keys.KNOWN:
            name, check = keys.KNOWN[key]
            try:
                fields[name] = check(entry)
            except ValueError as exc:
                raise SpecError(_with_key(key, str(exc)), file=README, line=entry.line) from None
        else:
            extra[key] = entry.value
            warnings.append(_unknown_key_warning(key, entry.line))
    return fields, warnings, extra


def _with_key(key: str, reason: str) -> str:
    # "sdk 'gradoi' is not one of ..." reads better than "sdk: 'gradoi' is not one of ..."
    return f"{key} {reason}"


def _unknown_key_warning(key: str, line: int) -> str:
    if key in keys.HUB_ONLY:
        return f"README.md line {line}: '{key}' is a Hugging Face Hub setting that spaces-runtime ignores"
    close = difflib.get_close_matches(key, list(keys.KNOWN), n=1, cutoff=0.75)
    hint = f"did you mean '{close[0]}'?" if close else "it is kept but not used"
    return f"README.md line {line}: unknown key '{key}' ({hint})"


def _infer_sdk(folder: Path, front: FrontMatter) -> str:
    for name in ("app.py", "streamlit_app.py"):
        path = folder / name
        if path.is_file():
            match = _IMPORT.search(path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1)
    if (folder / "Dockerfile").is_file():
        return "docker"
    if (folder / "index.html").is_file():
        return "static"
    where = "the front matter has no 'sdk' key" if front.present else "README.md has no front matter"
    raise NoAppFileError(f"{where} and no app.py that imports gradio or streamlit was found; add an app.py, "
                         "or start README.md with the lines '---', 'sdk: gradio', '---'",
                         file=README, line=front.first_line if front.present else None)


def _detected_from(folder: Path, sdk: str) -> str:
    if sdk == "docker":
        return "its Dockerfile"
    if sdk == "static":
        return "its index.html"
    found = next((n for n in ("app.py", "streamlit_app.py") if (folder / n).is_file()), "app.py")
    return f"{found}, which imports {sdk}"


def _find_app_file(folder: Path, sdk: str, app_file: str | None, entries: dict[str, Entry]) -> str:
    if app_file is not None:
        line = entries["app_file"].line
        relative = _inside(folder, app_file, line)
        if not (folder / relative).is_file():
            raise NoAppFileError(f"app_file '{app_file}' is not in the app folder; "
                                 f"{_suggest_files(folder, sdk)}", file=README, line=line)
        return relative
    for candidate in DEFAULT_APP_FILES[sdk]:
        if (folder / candidate).is_file():
            return _inside(folder, candidate, None)
    names = " or ".join(DEFAULT_APP_FILES[sdk])
    raise NoAppFileError(f"no {names} in the app folder (sdk: {sdk}); add one, or set app_file to "
                         f"the file to run. {_suggest_files(folder, sdk)}", file=README)


def _inside(folder: Path, app_file: str, line: int | None, key: str = "app_file") -> str:
    """The file as a clean relative path, refusing absolute paths and ones that leave the folder."""
    posix = PurePosixPath(app_file.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(app_file).drive or not app_file.strip():
        raise SpecError(f"{key} '{app_file}' must be a path inside the app folder, like app.py or src/app.py",
                        file=README, line=line)
    target = (folder / posix).resolve()
    if ".." in posix.parts or not target.is_relative_to(folder.resolve()):
        raise SpecError(f"{key} '{app_file}' points outside the app folder; "
                        "write a path inside it, like app.py or src/app.py", file=README, line=line)
    return posix.as_posix()


def _suggest_files(folder: Path, sdk: str) -> str:
    suffix = ".html" if sdk == "static" else ".py"
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob(f"*{suffix}")
                   if ".venv" not in p.parts and "__pycache__" not in p.parts)[:5]
    return f"files that could be it: {', '.join(found)}" if found else f"the folder has no {suffix} files"


def _requirement_fields(folder: Path) -> dict[str, Any]:
    requirements = read_requirements(folder, REQUIREMENTS)
    pre = read_requirements(folder, PRE_REQUIREMENTS)
    packages = read_lines(folder, PACKAGES)
    return {
        "requirements": [r.text for r in requirements], "requirement_lines": [r.number for r in requirements],
        "pre_requirements": [r.text for r in pre], "pre_requirement_lines": [r.number for r in pre],
        "packages": [p.text for p in packages], "package_lines": [p.number for p in packages],
    }


def _length_warnings(fields: dict[str, Any]) -> list[str]:
    description = fields.get("short_description") or ""
    if len(description) > 60:
        return [f"README.md: short_description is {len(description)} characters; "
                "Hugging Face cuts it at 60, so the gallery shows the start only"]
    return []
