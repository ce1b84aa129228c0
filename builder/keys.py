"""Checks for each Hugging Face front matter key: pure functions from a value to the field's value.

A check raises ``ValueError`` with what was expected; ``builder.spec`` adds the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from builder.frontmatter import Entry

SDKS = ("gradio", "streamlit", "docker", "static")
COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
HEADERS = ("mini", "default")

_VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc|\.post|\.dev)\d+)?$")
_PYTHON = re.compile(r"^3\.\d{1,2}(\.\d{1,2})?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"'{value}'"


def text(entry: Entry) -> str:
    """Strings; numbers are kept as written (a title "2048" is fine)."""
    if isinstance(entry.value, str):
        return entry.value
    if isinstance(entry.value, int | float) and not isinstance(entry.value, bool) and entry.raw is not None:
        return entry.raw
    raise ValueError(f"must be a string, found {_kind(entry.value)}")


def choice(options: tuple[str, ...]) -> Callable[[Entry], str]:
    def check(entry: Entry) -> str:
        if not isinstance(entry.value, str):
            raise ValueError(f"must be a string, one of {', '.join(options)}; found {_kind(entry.value)}")
        if entry.value not in options:
            raise ValueError(f"'{entry.value}' is not one of {', '.join(options)}")
        return entry.value

    return check


def version(entry: Entry) -> str:
    # the raw text: "4.10" must not become the float 4.1
    raw = entry.raw if entry.raw is not None and not isinstance(entry.value, str) else entry.value
    if not isinstance(raw, str) or not _VERSION.match(raw.strip()):
        raise ValueError(f"{_kind(raw)} is not a version number; write one like 6.31.0")
    return raw.strip()


def python_version(entry: Entry) -> str:
    raw = entry.raw if entry.raw is not None and not isinstance(entry.value, str) else entry.value
    if not isinstance(raw, str) or not _PYTHON.match(raw.strip()):
        raise ValueError(f"{_kind(raw)} is not a Python 3 version; write one like \"3.11\" (in quotes)")
    return raw.strip()


def boolean(entry: Entry) -> bool:
    if not isinstance(entry.value, bool):
        raise ValueError(f"must be true or false, found {_kind(entry.value)}")
    return entry.value


def port(entry: Entry) -> int:
    value = entry.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number (a port like 7860), found {_kind(value)}")
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a port; write a number from 1 to 65535, like 7860")
    return value


MAX_REPLICAS = 16  # a space's tasks on the swarm backend; more is a load test, not a demo


def replicas(entry: Entry) -> int:
    value = entry.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number of instances (like 2), found {_kind(value)}")
    if not 1 <= value <= MAX_REPLICAS:
        raise ValueError(f"{value} is not a number of instances; write one from 1 to {MAX_REPLICAS}")
    return value


def string_list(entry: Entry) -> list[str]:
    value = entry.value
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ValueError(f"must be a list of strings like [a, b], found {_kind(value)}")
    return [str(v) for v in value]


def duration(entry: Entry) -> float:
    """HF's duration format: "30m", "1h", "1h30m", "90s" → seconds."""
    value = entry.value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a duration like \"30m\" or \"1h\", found {_kind(value)}")
    compact = value.replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"'{value}' is not a duration; write one like \"30m\", \"1h\" or \"1h30m\"")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def headers(entry: Entry) -> dict[str, str]:
    value = entry.value
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()):
        raise ValueError(f"must be a mapping of header names to values, found {_kind(value)}")
    return {k: str(v) for k, v in value.items()}


_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9\-_.]{0,63}$")
_MODEL_FIELDS = {"name": str, "file": str, "task": str, "input_dtype": str, "input_shape": list, "labels": list}


def runner_models(entry: Entry) -> list[dict[str, Any]]:
    """This platform's own key: model files in the app folder that the runner serves to every app, e.g.
    ``- {name: shapes, file: model/shapes.pt, task: image-classification, input_shape: [3, 32, 32]}``."""
    value = entry.value
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"must be a list of mappings with name and file, found {_kind(value)}")
    models = []
    for item in value:
        unknown = set(item) - set(_MODEL_FIELDS)
        if unknown or "name" not in item or "file" not in item:
            raise ValueError(f"each entry needs name and file, and may have {', '.join(list(_MODEL_FIELDS)[2:])};"
                             f" found {', '.join(map(str, item))}")
        for key, kind in _MODEL_FIELDS.items():
            if key in item and not isinstance(item[key], kind):
                raise ValueError(f"{key} of model '{item['name']}' must be a {kind.__name__}, found {_kind(item[key])}")
        if not _MODEL_NAME.match(str(item["name"])):
            raise ValueError(f"model name '{item['name']}' must be lower-case letters, digits, '-', '_' or '.'")
        models.append(dict(item))
    return models


# README key → (AppSpec field, check)
KNOWN: dict[str, tuple[str, Callable[[Entry], Any]]] = {
    "title": ("title", text),
    "emoji": ("emoji", text),
    "colorFrom": ("color_from", choice(COLORS)),
    "colorTo": ("color_to", choice(COLORS)),
    "sdk": ("sdk", choice(SDKS)),
    "sdk_version": ("sdk_version", version),
    "python_version": ("python_version", python_version),
    "app_file": ("app_file", text),
    "app_port": ("app_port", port),
    "short_description": ("short_description", text),
    "pinned": ("pinned", boolean),
    "tags": ("tags", string_list),
    "models": ("models", string_list),
    "license": ("license", text),
    "startup_duration_timeout": ("startup_duration_timeout", duration),
    "fullWidth": ("full_width", boolean),
    "header": ("header", choice(HEADERS)),
    "disable_embedding": ("disable_embedding", boolean),
    "custom_headers": ("custom_headers", headers),
    "runner_models": ("runner_models", runner_models),
    # the tier it asks for (Hugging Face's names); an unknown tier is a warning at launch, where the tiers are known
    "suggested_hardware": ("suggested_hardware", text),
    "replicas": ("replicas", replicas),  # ours: instances on the swarm backend
}

# Hugging Face keys that mean something on the Hub but nothing here: kept in ``extra`` with a milder warning
HUB_ONLY = frozenset({
    "datasets", "hf_oauth", "hf_oauth_scopes", "hf_oauth_expiration_minutes", "hf_oauth_authorized_org",
    "suggested_storage", "preload_from_hub", "thumbnail", "base_path",
})
