"""The swarm's nodes over REST, for platform admins: `spaces nodes`, `spaces nodes drain|activate NAME`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from spaces_runtime.errors import SpacesError
from spaces_runtime.server.auth import PlatformDep, require_admin
from spaces_runtime.supervisor.swarm import SwarmBackend
from spaces_runtime.swarm.nodes import Nodes
from spaces_runtime.wiring.platform import Platform

router = APIRouter(prefix="/api/nodes", dependencies=[Depends(require_admin)])
_draining: set[asyncio.Task[Any]] = set()


class NotSwarmError(SpacesError):
    http_status = 409


def nodes_of(p: Platform) -> Nodes:
    backend = p.supervisor.backend
    if not isinstance(backend, SwarmBackend):
        raise NotSwarmError(f"this platform runs apps with the {backend.name} backend, which has no nodes",
                            hint="nodes exist with `spaces serve --backend swarm` on a swarm manager")
    return Nodes(backend.client, backend.platform, getattr(backend, "pins", None))  # the /data pins, if any


@router.get("")
async def list_nodes(p: PlatformDep) -> list[dict[str, Any]]:
    """Every node: name, role, state, availability, address, CPUs, memory, GPUs, the spaces running there."""
    return [n.as_json() for n in await asyncio.to_thread(nodes_of(p).views)]


@router.post("/{name}/drain")
async def drain(p: PlatformDep, name: str, empty_data: bool = False) -> dict[str, Any]:
    """Start moving this platform's apps off the node (rolling, start-first; a space whose /data is pinned there
    stops while its data is copied, or with ``empty_data`` starts elsewhere without it); it is drained once they
    are off (its availability in GET /api/nodes turns to drain, or its drain_error says why not)."""
    nodes = nodes_of(p)
    moved = await asyncio.to_thread(nodes.move_off, name, empty_data=empty_data)
    task = asyncio.create_task(asyncio.to_thread(nodes.finish_drain, name, empty_data=empty_data))
    _draining.add(task)  # held until done: the loop keeps only weak references to tasks
    task.add_done_callback(_draining.discard)
    return {"node": name, "moved": moved}


@router.post("/{name}/activate")
async def activate(p: PlatformDep, name: str) -> dict[str, Any]:
    await asyncio.to_thread(nodes_of(p).activate, name)
    return {"node": name, "availability": "active"}
