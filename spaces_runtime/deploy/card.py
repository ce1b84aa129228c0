"""What the gallery and the API show of a space: its README front matter, normalised (pure)."""

from __future__ import annotations

from typing import Any

from builder.spec import AppSpec

CARD_FIELDS = ("title", "emoji", "color_from", "color_to", "sdk", "sdk_version", "python_version", "app_file",
               "app_port", "short_description", "pinned", "tags", "models", "license", "full_width", "header",
               "disable_embedding", "custom_headers", "suggested_hardware", "replicas")


def card_of(spec: AppSpec) -> dict[str, Any]:
    card: dict[str, Any] = {key: getattr(spec, key) for key in CARD_FIELDS}
    card["warnings"] = list(spec.warnings)
    return card
