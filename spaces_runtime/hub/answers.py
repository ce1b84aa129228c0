"""The Hub API's parts (kept on the app: the state table, the trees, one commit at a time per space) and its
answers about a space, built from the platform's own (server/api.py's) plus the Hub's keys (hub/shapes.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from spaces_runtime.deploy import runchoice
from spaces_runtime.hub import shapes
from spaces_runtime.hub.state import HubStates
from spaces_runtime.hub.tree import SpaceFiles
from spaces_runtime.server.api import space_answer
from spaces_runtime.server.views import space_view
from spaces_runtime.store import SpaceRecord
from spaces_runtime.supervisor.tiers import TIERS
from spaces_runtime.wiring.platform import Platform


@dataclass
class HubParts:
    states: HubStates
    files: SpaceFiles
    commit_locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    @classmethod
    def of(cls, p: Platform) -> HubParts:
        """The state table, with each space's sleep time handed to the supervisor now and on every change."""
        states = HubStates(p.settings.db_path, on_sleep_time=p.supervisor.set_sleep_time)
        p.supervisor.sleep_times.update(states.sleep_times(p.store.spaces()))
        return cls(states, SpaceFiles(p.pipeline.commits))


def hub_parts(request: Request) -> HubParts:
    hub: HubParts = request.app.state.hub
    return hub


HubDep = Annotated[HubParts, Depends(hub_parts)]


def place(request: Request, p: Platform) -> shapes.Place:
    return shapes.Place(base_url=str(request.base_url), public_host=p.settings.public_link_host)


def machine(p: Platform) -> shapes.Machine:
    return shapes.Machine(hardware=p.settings.hardware, sleep_after_s=p.settings.sleep_after_s)


def runtime_of(p: Platform, parts: HubParts, record: SpaceRecord) -> dict[str, Any]:
    running = p.targets.runtime(record.id)
    hardware, replicas = runchoice.of_card(record.hardware, record.replicas, record.card, p.settings.hardware, TIERS,
                                           p.supervisor.backend_name)
    runs = shapes.Machine(hardware=str(hardware.value), sleep_after_s=p.settings.sleep_after_s,
                          replicas=int(replicas.value))
    return shapes.runtime(record, parts.states.get(record), runs, p.settings.public_link_host,
                          asdict(running) if running is not None else None)


def hub_fields(p: Platform, parts: HubParts, request: Request, record: SpaceRecord, *, sha: bool = True,
               siblings: bool = False) -> dict[str, Any]:
    """The Hub's keys of a space; ``siblings`` (its files at main) are read from git (the list asks with full)."""
    head = parts.files.head(record) if sha or siblings else None
    tree = parts.files.tree(record) if siblings else None
    files = [blob.sibling() for blob in tree.blobs.values()] if tree is not None else None
    return shapes.space_fields(record, parts.states.get(record), (head or shapes.EMPTY_TREE_SHA) if sha else None,
                               place(request, p), runtime_of(p, parts, record), files)


def space_info(p: Platform, parts: HubParts, request: Request, record: SpaceRecord,
               expand: list[str] | None = None) -> dict[str, Any]:
    """``GET /api/spaces/{owner}/{name}``: the platform's answer and the Hub's, for any client."""
    hub = hub_fields(p, parts, request, record, siblings=True)
    client = shapes.is_hub_client(request.headers.get("user-agent"))
    return shapes.merged(space_answer(p, record.id), hub, client, expand)


def list_fields(p: Platform, parts: HubParts, request: Request, record: SpaceRecord, full: bool) -> dict[str, Any]:
    """One item of ``GET /api/spaces``: its Hub keys (and the files' with ``full``)."""
    return hub_fields(p, parts, request, record, sha=full, siblings=full)


def list_item(p: Platform, request: Request, record: SpaceRecord, hub: dict[str, Any],
              expand: list[str] | None) -> dict[str, Any]:
    client = shapes.is_hub_client(request.headers.get("user-agent"))
    return shapes.merged(space_view(record, p.settings.public_link_host), hub, client, expand)


def runtime_answer(p: Platform, parts: HubParts, space_id: str) -> dict[str, Any]:
    """What a lifecycle call answers: the platform's view, with ``SpaceRuntime``'s keys at the top."""
    record = p.store.get(space_id)
    run = runtime_of(p, parts, record)
    view = space_answer(p, space_id)
    return {**view, **run, "runtime": run}
