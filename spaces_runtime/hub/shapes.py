"""The Hugging Face Hub's JSON for a space, built from the platform's record (pure).

``huggingface_hub`` parses these answers into ``SpaceInfo``, ``SpaceRuntime``, ``RepoFile``... (hf_api.py): dates
are ISO-8601 strings, the runtime is ``{stage, hardware: {current, requested}, gcTimeout, ...}``, ``host`` is the
URL the app answers at (``gradio_client.Client("owner/name")`` connects there). The platform's own REST answers
keep all their fields and gain these; the one key whose meaning differs is ``created_at`` (an epoch float here,
and ``SpaceInfo`` copies unknown keys over its own ``created_at`` datetime), so a Hub client does not get it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spaces_runtime.errors import InvalidNameError
from spaces_runtime.store import SpaceRecord

FILE_DOWNLOAD = re.compile(r"/spaces/[^/]+/[^/]+/resolve/")
HUB_CLIENT_MARK = "hf_hub/"  # in the User-Agent of huggingface_hub, and of gradio_client and `hf`, which use it
SDKS = ("gradio", "streamlit", "docker", "static")
EMPTY_TREE_SHA = hashlib.sha256().hexdigest()[:40]
# README key as the Hub writes it ← the platform's card field (deploy/card.py)
CARD_KEYS = {"title": "title", "emoji": "emoji", "color_from": "colorFrom", "color_to": "colorTo", "sdk": "sdk",
             "sdk_version": "sdk_version", "python_version": "python_version", "app_file": "app_file",
             "app_port": "app_port", "short_description": "short_description", "pinned": "pinned", "tags": "tags",
             "models": "models", "license": "license", "full_width": "fullWidth", "header": "header",
             "disable_embedding": "disable_embedding", "custom_headers": "custom_headers"}
# list_spaces(sort=...) as huggingface_hub sends it: the Hub key it orders by, largest first as on the Hub (the
# ISO-8601 dates, all in UTC with milliseconds, order as text does)
SORTS = ("createdAt", "lastModified", "likes", "trendingScore")


@dataclass(frozen=True)
class HubState:
    """What the Hub API keeps about a space beyond its record (hub/state.py stores it)."""

    sdk: str | None = None  # from create_repo(space_sdk=...), until a README names one
    sleep_time: int | None = None  # seconds; -1: never (None: the platform's default)
    hardware: str | None = None  # the requested tier


@dataclass(frozen=True)
class Place:
    """Where the caller reached the platform: links in answers use the same address, so they work for it."""

    base_url: str  # "http://127.0.0.1:7000/", always with its trailing slash
    public_host: str  # the host-form links' host (Settings.public_link_host)


@dataclass(frozen=True)
class Machine:
    """The hardware a space runs on (deploy.runchoice), how many replicas, and the platform's idle timeout."""

    hardware: str
    sleep_after_s: float  # 0: apps never sleep
    replicas: int = 1


def is_file_download(scope: Mapping[str, object]) -> bool:
    """``/spaces/{owner}/{name}/resolve/{revision}/{path}`` (hf_hub_download): the platform's, not the app's, on
    the path-form link, as on huggingface.co; an app keeps every path of its own host-form link."""
    return scope.get("type") == "http" and FILE_DOWNLOAD.match(str(scope.get("path", ""))) is not None


def is_hub_client(user_agent: str | None) -> bool:
    return HUB_CLIENT_MARK in (user_agent or "")


def iso(at: float) -> str:
    """The Hub's dates: ISO-8601 in UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sha_of(code_hash: str | None) -> str:
    """A 40-hex revision id from the platform's sha256 code hash (the Hub's commit ids are 40 hex)."""
    return code_hash[:40] if code_hash else EMPTY_TREE_SHA


def card_data(card: Mapping[str, Any]) -> dict[str, Any]:
    return {hub: card[ours] for ours, hub in CARD_KEYS.items() if card.get(ours) not in (None, "", [], {})}


def runtime(record: SpaceRecord, state: HubState, machine: Machine, public_host: str,
            instance: Mapping[str, Any] | None) -> dict[str, Any]:
    """``SpaceRuntime``'s JSON; ``instance`` (the platform's own backend, backend_ref, upstream, started_at) is
    merged in while the app runs. ``machine`` is what this space runs on (its owner's tier, else its README's,
    else the platform's); ``requested`` is the owner's choice where there is one."""
    default_sleep = int(machine.sleep_after_s) if machine.sleep_after_s > 0 else -1
    return {
        "stage": record.stage.value,
        "hardware": {"current": machine.hardware if instance else None,
                     "requested": record.hardware or machine.hardware},
        "gcTimeout": state.sleep_time if state.sleep_time is not None else default_sleep,
        "storage": None,
        "replicas": {"current": machine.replicas if instance else 0, "requested": record.replicas or machine.replicas},
        "devMode": False,
        "domains": [{"domain": f"{record.owner}-{record.name}.{public_host}", "stage": "READY"}],
        "errorMessage": record.error,
        **(instance or {}),
    }


def space_fields(record: SpaceRecord, state: HubState, sha: str | None, place: Place,
                 run: dict[str, Any], siblings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Hub's keys of a space (``SpaceInfo``); ``sha`` and ``siblings`` only when known (they read files)."""
    fields: dict[str, Any] = {
        "_id": record.id, "id": record.id, "author": record.owner, "sha": sha,
        "createdAt": iso(record.created_at), "lastModified": iso(record.updated_at),
        "private": record.private, "gated": False, "disabled": False,
        "host": f"{place.base_url}spaces/{record.id}/", "subdomain": f"{record.owner}-{record.name}",
        "likes": record.likes, "sdk": record.card.get("sdk") or state.sdk, "tags": list(record.card.get("tags") or []),
        "cardData": card_data(record.card), "runtime": run, "trendingScore": int(record.trending_score),
        "models": [], "datasets": [],
    }
    if sha is None:
        del fields["sha"]
    if siblings is not None:
        fields["siblings"] = siblings
    return fields


def merged(view: Mapping[str, Any], hub: Mapping[str, Any], hub_client: bool,
           expand: list[str] | None = None) -> dict[str, Any]:
    """The platform's answer and the Hub's keys together; ``expand`` (the Hub's) keeps only what it names."""
    if expand:
        return {"_id": hub["_id"], "id": hub["id"], **{key: hub[key] for key in expand if key in hub}}
    answer = {**view, **hub}
    if hub_client:
        answer.pop("created_at", None)
    return answer


def select(spaces: Iterable[dict[str, Any]], *, author: str | None = None, search: str | None = None,
           sort: str | None = None, limit: int | None = None, tags: Iterable[str] = ()) -> list[dict[str, Any]]:
    """``list_spaces(author, search, sort, limit, filter)`` over the spaces' Hub keys (``space_fields``)."""
    wanted = {tag.lower() for tag in tags}
    found = [s for s in spaces
             if (author is None or s["author"].lower() == author.lower())
             and (not search or search.lower() in s["id"].lower())
             and wanted <= {str(t).lower() for t in [*s.get("tags", []), s.get("sdk") or ""]}]
    if sort is not None:
        if sort not in SORTS:
            raise InvalidNameError(f"sort {sort!r} is not one of {', '.join(SORTS)}",
                                   hint="list_spaces(sort=...) takes created_at, last_modified, likes, trending_score")
        found.sort(key=lambda s: s[sort], reverse=True)
    if limit is not None:
        if limit < 0:
            raise InvalidNameError(f"limit {limit} is negative", hint="give a count of spaces, or none for all")
        found = found[:limit]
    return found


def git_blob_id(content: bytes) -> str:
    """The git object id of a file's content, as ``huggingface_hub`` computes it to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def tree_id(children: Iterable[str]) -> str:
    """A stable id for a folder from its children's ids (not git's tree id: nothing compares it to one)."""
    return hashlib.sha1("\n".join(children).encode(), usedforsecurity=False).hexdigest()


def file_entry(path: str, size: int, oid: str) -> dict[str, Any]:
    return {"type": "file", "oid": oid, "size": size, "path": path}


def folder_entry(path: str, oid: str) -> dict[str, Any]:
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def preupload_answer(files: Iterable[Mapping[str, Any]], current: Mapping[str, str],
                     ignored: Iterable[str]) -> dict[str, Any]:
    """Every file is sent inline ("regular", base64 in the commit): the platform keeps no LFS store of its own
    for the Hub API; ``oid`` (the current content's) lets the client skip files that did not change."""
    skip = set(ignored)
    return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": f["path"] in skip,
                       "oid": current.get(f["path"])} for f in files]}


def hardware_list(tiers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``list_spaces_hardware()``: the platform's tiers, free of charge. ``tiers``: name → supervisor Tier."""
    answer = []
    for name, tier in tiers.items():
        accelerator = ({"type": "gpu", "model": name.split("-")[0].split("x")[0].upper(),
                        "quantity": str(tier.gpus), "vram": "", "manufacturer": ""} if tier.gpus else None)
        answer.append({"name": name, "prettyName": name, "cpu": f"{tier.cpus:g} vCPU",
                       "ram": f"{tier.memory_mb // 1024} GB", "accelerator": accelerator,
                       "unitCostMicroUSD": 0, "unitCostUSD": 0.0, "unitLabel": "hour"})
    return answer


def check_hardware(flavor: object, tiers: Iterable[str]) -> str:
    """A requested flavor must be one of the platform's tiers (the Hub's names for the ones it has)."""
    names = list(tiers)
    if not isinstance(flavor, str) or flavor not in names:
        raise InvalidNameError(f"hardware {flavor!r} is not a tier of this platform",
                               hint=f"request one of {', '.join(names)}")
    return flavor


def check_sleep_time(seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or (seconds < 0 and seconds != -1):
        raise InvalidNameError(f"sleep time {seconds!r} is not a number of seconds",
                               hint="give seconds of inactivity before the space sleeps, or -1 for never")
    return seconds


def new_space_files(name: str, sdk: str) -> dict[str, str]:
    """What ``create_repo`` puts in a new space, as the Hub does: a README whose front matter names the SDK (and
    for a static space the page it serves). The space stays in NO_APP_FILE until its app file is committed."""
    if sdk not in SDKS:
        raise InvalidNameError(f"sdk {sdk!r} is not one of {', '.join(SDKS)}", hint="create_repo(space_sdk='gradio')")
    lines = ["---", f"title: {name}", "emoji: 🚀", "colorFrom: blue", "colorTo: indigo", f"sdk: {sdk}"]
    lines += {"gradio": ["app_file: app.py"], "streamlit": ["app_file: app.py"], "docker": ["app_port: 7860"]}.get(
        sdk, [])
    files = {"README.md": "\n".join([*lines, "pinned: false", "---", "", f"# {name}", ""])}
    if sdk == "static":
        files["index.html"] = f"<!doctype html>\n<html><body><h1>{name}</h1></body></html>\n"
    return files
