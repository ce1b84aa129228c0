"""The Hub API that ``huggingface_hub`` (and ``gradio_client``, ``hf``) speak, on the Hub's paths, as a superset
of the platform's REST API: every answer keeps the platform's fields and gains the Hub's (hub/shapes.py).

    GET    /api/spaces                      list_spaces(author, search, sort, limit, filter, full, expand)
    GET    /api/spaces/hardware             list_spaces_hardware: the platform's tiers
    GET    /api/spaces/{id}                 space_info (also the platform's own answer)
    GET    /api/spaces/{id}/runtime         get_space_runtime
    POST   /api/spaces/{id}/restart|pause   restart_space(factory_reboot), pause_space
    POST   /api/spaces/{id}/sleeptime       set_space_sleep_time            {seconds}
    POST   /api/spaces/{id}/hardware        request_space_hardware          {flavor, sleepTimeSeconds?}
    GET    /api/spaces/{id}/logs/build|run  fetch_space_logs: JSON events for Hub clients; the platform's for others
    PUT    /api/spaces/{id}/settings        update_repo_settings(private=... | visibility=...)
    POST|DELETE /api/spaces/{id}/like       like / unlike
    GET    /api/spaces/{id}/auth-check      auth_check

hub/api_repos.py creates, deletes, moves and duplicates spaces; hub/api_files.py reads and commits their files;
hub/api_unsupported.py answers 501 for what is not a Space. ``install`` mounts them all ahead of server/api.py's
routes (the paths they share are answered here, as a superset) and adds the Hub's error headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from sse_starlette import EventSourceResponse

from spaces_runtime.errors import InvalidNameError, SpacesError
from spaces_runtime.hub import shapes
from spaces_runtime.hub.answers import HubDep, HubParts, list_fields, list_item, runtime_answer, runtime_of, space_info
from spaces_runtime.hub.api_files import router as files_router
from spaces_runtime.hub.api_repos import router as repos_router
from spaces_runtime.hub.api_unsupported import router as unsupported_router
from spaces_runtime.hub.apierrors import PLATFORM, NotSupportedError, with_hub_headers
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server import accounts
from spaces_runtime.server import api as platform_api
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, changeable, seen, visible
from spaces_runtime.server.secrets import apply
from spaces_runtime.stages import Stage
from spaces_runtime.store import SpaceRecord
from spaces_runtime.supervisor.tiers import TIERS
from spaces_runtime.wiring.platform import Platform

router = APIRouter(prefix="/api", tags=["hub"])
WAKE_WAIT_S = 120.0  # as long as the gateway holds an API client while its app wakes
WAKING = frozenset({Stage.BUILDING, Stage.APP_STARTING})


def install(app: FastAPI, p: Platform) -> None:
    """Mount the Hub API (before the platform's own routes) and give every SpacesError answer the Hub's headers."""
    app.state.hub = HubParts.of(p)
    app.add_exception_handler(SpacesError, with_hub_headers(app.exception_handlers.get(SpacesError)))
    for hub_router in (router, repos_router, files_router, unsupported_router):
        app.include_router(hub_router)


def _expand(request: Request) -> list[str] | None:
    found = request.query_params.getlist("expand") + request.query_params.getlist("expand[]")
    return found or None


@router.get("/spaces")
def list_spaces(request: Request, p: PlatformDep, who: PrincipalDep, parts: HubDep,
                author: str | None = None, search: str | None = None, sort: str | None = None,
                limit: int | None = None, full: bool = False,
                filter: Annotated[list[str] | None, Query()] = None) -> list[dict[str, Any]]:
    expand = _expand(request)
    records = {r.id: r for r in visible(p, who, p.store.spaces())}
    hubs = [list_fields(p, parts, request, r, full or bool(expand)) for r in records.values()]
    chosen = shapes.select(hubs, author=author, search=search, sort=sort, limit=limit, tags=filter or ())
    return [list_item(p, request, records[h["id"]], h, expand) for h in chosen]


@router.get("/spaces/hardware")
def hardware(_: PrincipalDep) -> list[dict[str, Any]]:
    return shapes.hardware_list(TIERS)


@router.get("/spaces/{owner}/{name}")
async def get_space(owner: str, name: str, request: Request, p: PlatformDep, who: PrincipalDep,
                    parts: HubDep) -> dict[str, Any]:
    """To a Hub client, a SLEEPING space is woken first and answered once it runs: gradio_client.Client("o/n")
    looks the space up here, then connects to ``host`` with a 5 s timeout, and waits only while the stage is
    BUILDING; an app takes longer than that to wake. Others (the CLI, the gallery) see it asleep."""
    record = seen(p, who, make_space_id(owner, name))
    if record.stage == Stage.SLEEPING and shapes.is_hub_client(request.headers.get("user-agent")):
        record = await _woken(p, record.id)
    return space_info(p, parts, request, record, _expand(request))


async def _woken(p: Platform, space_id: str) -> SpaceRecord:
    """Wake the space (as a visit to its link does) and wait until it serves or fails, WAKE_WAIT_S at most."""
    deadline = time.monotonic() + WAKE_WAIT_S
    with contextlib.suppress(SpacesError, TimeoutError):
        await asyncio.wait_for(p.lifecycle.wake(space_id), WAKE_WAIT_S)
    while (record := p.store.get(space_id)).stage in WAKING and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # a wake that had to start a deploy: its stage says when it is done
    owner, name = space_id.split("/", 1)
    p.targets.touch(owner, name)
    return record


@router.get("/spaces/{owner}/{name}/runtime")
def get_runtime(owner: str, name: str, p: PlatformDep, who: PrincipalDep, parts: HubDep) -> dict[str, Any]:
    return runtime_of(p, parts, seen(p, who, make_space_id(owner, name)))


@router.get("/spaces/{owner}/{name}/auth-check")
def auth_check(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, str]:
    seen(p, who, make_space_id(owner, name))
    return {}


@router.post("/spaces/{owner}/{name}/restart", status_code=202)
async def restart(owner: str, name: str, p: PlatformDep, who: PrincipalDep, parts: HubDep,
                  factory: bool = False) -> dict[str, Any]:
    """``factory=true`` (restart_space(factory_reboot=True)) deploys the code again from scratch; the
    environment it builds is shared by every space with the same requirements, and rebuilt only when they change."""
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    await p.lifecycle.restart(space_id)
    p.accounts.audit(who, "restart", space_id, "factory reboot" if factory else "")
    return runtime_answer(p, parts, space_id)


@router.post("/spaces/{owner}/{name}/pause")
async def pause(owner: str, name: str, p: PlatformDep, who: PrincipalDep, parts: HubDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    await p.lifecycle.pause(space_id)
    p.accounts.audit(who, "pause", space_id)
    return runtime_answer(p, parts, space_id)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidNameError("the body is not a JSON object", hint='e.g. {"seconds": 3600}')
    return body


@router.post("/spaces/{owner}/{name}/sleeptime")
async def sleep_time(owner: str, name: str, request: Request, p: PlatformDep, who: PrincipalDep,
                     parts: HubDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    record = changeable(p, who, space_id)
    seconds = shapes.check_sleep_time((await _json(request)).get("seconds"))
    parts.states.change(record, sleep_time=seconds)
    p.accounts.audit(who, "set sleep time", space_id, f"{seconds} s")
    return runtime_answer(p, parts, space_id)


@router.post("/spaces/{owner}/{name}/hardware")
async def request_hardware(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
                           who: PrincipalDep, parts: HubDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    record = changeable(p, who, space_id)
    body = await _json(request)
    flavor = shapes.check_hardware(body.get("flavor"), TIERS)
    seconds = body.get("sleepTimeSeconds")
    if seconds is not None:
        parts.states.change(record, sleep_time=shapes.check_sleep_time(seconds))
    p.store.update(space_id, hardware=flavor)
    p.accounts.audit(who, "request hardware", space_id, flavor)
    await apply(p, space_id, response)  # it restarts on the new tier, as on the Hub
    return runtime_answer(p, parts, space_id)


@router.put("/spaces/{owner}/{name}/settings")
async def settings(owner: str, name: str, request: Request, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    """update_repo_settings sends {"visibility": "private"|"public"}; the platform's own clients {"private": b}."""
    body = await _json(request)
    if body.get("gated") not in (None, False):
        raise NotSupportedError("gated spaces are not served by spaces-runtime",
                                hint="make the space private and share it: spaces share OWNER/NAME")
    private = body.get("private")
    if body.get("visibility") is not None:
        private = body["visibility"] in ("private", "protected")
    choice = accounts.SpaceSettings(private=None if private is None else bool(private))
    return accounts.space_settings(owner, name, choice, p, who)


@router.post("/spaces/{owner}/{name}/like")
async def like(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
               who: PrincipalDep) -> dict[str, Any]:
    """The platform's like; the Hub's clients send no body (a like), the gallery sends {liked}."""
    liked = (await _json(request)).get("liked", True)
    return platform_api.like(owner, name, platform_api.LikeBody(liked=bool(liked)), request, response, p, who)


@router.delete("/spaces/{owner}/{name}/like")
def unlike(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
           who: PrincipalDep) -> dict[str, Any]:
    return platform_api.like(owner, name, platform_api.LikeBody(liked=False), request, response, p, who)


@router.get("/spaces/{owner}/{name}/logs/{kind}", response_model=None)
async def logs(owner: str, name: str, kind: Literal["build", "run"], request: Request, p: PlatformDep,
               who: PrincipalDep, follow: Annotated[int, Query()] = 1) -> Response:
    """A Hub client gets one ``data: {"data": LINE, "timestamp": ISO}`` event per line (what fetch_space_logs
    reads); the build log's stream ends when the build does, a run log's stays open for new lines (the client
    stops reading when it has what it asked for). Everyone else gets the platform's own stream."""
    if not shapes.is_hub_client(request.headers.get("user-agent")):
        return await platform_api.logs(owner, name, kind, p, who, follow)
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    return EventSourceResponse(_hub_log_events(p, space_id, kind), ping=platform_api.SSE_PING_S, sep="\n")


async def _hub_log_events(p: Platform, space_id: str, kind: Literal["build", "run"]) -> AsyncIterator[dict[str, str]]:
    async for event in platform_api._log_events(p, space_id, kind):
        if "event" in event:  # the platform's own end-of-build marker: the Hub's stream just ends
            break
        stamp = shapes.iso(time.time())
        for line in event.get("data", "").split("\n"):
            yield {"data": json.dumps({"data": line + "\n", "timestamp": stamp})}


@router.get("/models", response_model=None)
def models(request: Request, p: PlatformDep) -> list[dict[str, Any]]:
    """The platform's runner models; to a Hub client (list_models), a 501: there are no model repositories."""
    if shapes.is_hub_client(request.headers.get("user-agent")):
        raise NotSupportedError(f"{PLATFORM}: there are no model repositories to list",
                                hint="list_spaces() lists what this platform hosts")
    return platform_api.models(p)
