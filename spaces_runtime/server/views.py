"""How a space is shown over the API: the stored record plus its links (pure)."""

from __future__ import annotations

from typing import Any

from spaces_runtime.stages import ERROR_STAGES
from spaces_runtime.store import SpaceRecord


def links(space_id: str, public_host: str, scheme: str = "http") -> dict[str, str]:
    owner, name = space_id.split("/", 1)
    return {
        "url": f"{scheme}://{public_host}/spaces/{owner}/{name}/",
        "host_url": f"{scheme}://{owner}-{name}.{public_host}/",
        "page_url": f"{scheme}://{public_host}/{owner}/{name}",
    }


def space_view(record: SpaceRecord, public_host: str) -> dict[str, Any]:
    card = record.card
    return {
        "id": record.id,
        "owner": record.owner,
        "name": record.name,
        "stage": record.stage.value,
        "error": record.error,
        "is_error": record.stage in ERROR_STAGES,
        **links(record.id, public_host),
        "sdk": card.get("sdk"),
        "title": card.get("title") or record.name,
        "emoji": card.get("emoji") or "🚀",
        "color_from": card.get("color_from") or "blue",
        "color_to": card.get("color_to") or "indigo",
        "short_description": card.get("short_description") or "",
        "pinned": bool(card.get("pinned")),
        "tags": card.get("tags") or [],
        "card": card,
        "desired": record.desired,
        "private": record.private,
        "likes": record.likes,
        "visits": record.visits,
        "trending_score": record.trending_score,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "env_hash": record.env_hash,
    }
