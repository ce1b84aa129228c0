"""The REST API (the CLI and the gallery both read it). OpenAPI at /openapi.json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from builder.keys import MAX_REPLICAS
from spaces_runtime.appfiles import receive
from spaces_runtime.auth import rules
from spaces_runtime.auth.principal import Principal
from spaces_runtime.deploy import runchoice
from spaces_runtime.deploy.versions import version_name
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, changeable, seen, visible, writable
from spaces_runtime.server.secrets import apply
from spaces_runtime.server.views import space_view
from spaces_runtime.store import SpaceRecord
from spaces_runtime.supervisor.process import memory_metrics, space_pss
from spaces_runtime.supervisor.tiers import TIERS
from spaces_runtime.wiring.platform import Platform

LIKER_COOKIE = "spaces_liker"
SSE_PING_S = 15  # a comment line this often keeps proxies from closing a quiet stream


def space_answer(p: Platform, space_id: str) -> dict[str, Any]:
    """A space as the REST API shows it: its record and, while it runs, its instance."""
    record = p.store.get(space_id)
    view = space_view(record, p.settings.public_link_host)
    view["version"] = version_name(record.code_dir)  # the code that serves (or last served)
    view["latest_version"] = p.pipeline.latest.get(space_id)  # the newest deploy's, while it builds and after
    view |= p.pipeline.commits.view(space_id)  # sha: main's head (every deploy is a commit); running_sha
    runtime = p.targets.runtime(space_id)
    view["runtime"] = asdict(runtime) if runtime is not None else None
    view["memory"] = {"pss_bytes": space_pss(p.supervisor, space_id)}  # None while nothing of it runs
    view |= run_view(p, record)
    return view


def run_view(p: Platform, record: SpaceRecord) -> dict[str, Any]:
    """The tier and replicas it runs with, where each came from, and what its owner asked for (None: nothing)."""
    hardware, replicas = runchoice.of_card(record.hardware, record.replicas, record.card, p.settings.hardware, TIERS,
                                           p.supervisor.backend_name)
    return {"hardware": {"current": hardware.value, "source": hardware.source, "requested": record.hardware},
            "replicas": {"current": replicas.value, "source": replicas.source, "requested": record.replicas}}


router = APIRouter(prefix="/api")


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.put("/spaces/{owner}/{name}", status_code=202)
async def deploy(owner: str, name: str, request: Request, p: PlatformDep, who: PrincipalDep,
                 private: Annotated[bool | None, Query()] = None) -> dict[str, Any]:
    """Body: a gzip'd tar of the app folder. Answers at once; the build goes on (follow logs/build)."""
    space_id = make_space_id(owner, name)
    existing = writable(p, who, space_id)
    archive = await receive(request.stream(), p.settings.data_dir / "tmp", p.pipeline.limits)
    try:
        version = await p.pipeline.accept_upload(owner, name, archive, author=who.name)
    finally:
        archive.unlink(missing_ok=True)
    if private is not None or existing is None:  # a new space is public unless asked, as on Hugging Face
        p.store.update(space_id, private=bool(private))
    p.accounts.audit(who, "deploy", space_id, f"version {version}" + (" (private)" if private else ""))
    return {**space_answer(p, space_id), "uploaded_version": version}


@router.get("/spaces")
def list_spaces(p: PlatformDep, who: PrincipalDep) -> list[dict[str, Any]]:
    return [space_view(r, p.settings.public_link_host) for r in visible(p, who, p.store.spaces())]


@router.get("/spaces/{owner}/{name}")
def get_space(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    return space_answer(p, space_id)


@router.get("/spaces/{owner}/{name}/events")
def space_events(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> list[dict[str, Any]]:
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    return [event.model_dump() for event in p.store.events(space_id)]


@router.get("/spaces/{owner}/{name}/logs/{kind}", response_model=None)
async def logs(owner: str, name: str, kind: Literal["build", "run"], p: PlatformDep, who: PrincipalDep,
               follow: Annotated[int, Query()] = 1) -> Response:
    """``follow=1`` (default): text/event-stream, one `data:` per line; the build log ends when the build does.
    ``follow=0``: the whole log as plain text."""
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    if not follow:
        return PlainTextResponse(p.logs.read(space_id, kind))
    return EventSourceResponse(_log_events(p, space_id, kind), ping=SSE_PING_S, sep="\n")


async def _log_events(p: Platform, space_id: str, kind: Literal["build", "run"]) -> AsyncIterator[dict[str, str]]:
    """One event per chunk of lines; the build log's stream ends with an ``end`` event naming the stage."""
    lines = p.logs.follow(space_id, kind)
    next_chunk: asyncio.Task[str] | None = None
    try:
        while True:
            next_chunk = next_chunk or asyncio.ensure_future(anext(lines))
            done, _ = await asyncio.wait({next_chunk}, timeout=1.0)
            if not done:
                if kind == "build" and not p.pipeline.is_deploying(space_id):
                    break  # the build ended before we subscribed, or its end was already sent
                continue
            try:
                chunk = next_chunk.result()
            except StopAsyncIteration:
                break
            next_chunk = None
            yield {"data": "\n".join(chunk.splitlines())}
        record = p.store.find(space_id)
        yield {"event": "end", "data": record.stage.value if record else "DELETED"}
    finally:
        if next_chunk is not None:
            next_chunk.cancel()
        with contextlib.suppress(Exception):
            await lines.aclose()  # type: ignore[attr-defined]


@router.get("/events")
async def all_events(p: PlatformDep, who: PrincipalDep) -> EventSourceResponse:
    """Stage changes of every space the caller may see, as server-sent events (the gallery's live badges)."""

    async def stream() -> AsyncIterator[dict[str, Any]]:
        yield {"retry": 2000}
        async for event in p.hub.listen():
            record = p.store.peek(str(event.get("id", "")))
            if record is None or rules.may_see(who, record.id, record.private):
                yield {"event": event["type"], "data": json.dumps(event)}

    return EventSourceResponse(stream(), ping=SSE_PING_S, sep="\n")


@router.post("/spaces/{owner}/{name}/restart", status_code=202)
async def restart(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    await p.lifecycle.restart(space_id)
    p.accounts.audit(who, "restart", space_id)
    return space_answer(p, space_id)


class RunSettings(BaseModel):
    hardware: str | None = None  # a tier's name; "default": the README's suggested_hardware or the platform's again
    replicas: int | None = None  # 1..16 (swarm backend only beyond 1); 0: the README's replicas or 1 again


@router.put("/spaces/{owner}/{name}/run")
async def run_settings(owner: str, name: str, body: RunSettings, response: Response, p: PlatformDep,
                       who: PrincipalDep) -> dict[str, Any]:
    """What the space runs on; a change restarts it when it should run (answered with X-Spaces-Restarted: 1)."""
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    changes: dict[str, Any] = {}
    if body.hardware is not None:
        changes["hardware"] = None if body.hardware == "default" else runchoice.check_hardware(body.hardware, TIERS)
    if body.replicas is not None:
        changes["replicas"] = None if body.replicas == 0 else \
            runchoice.check_replicas(body.replicas, p.supervisor.backend_name, MAX_REPLICAS)
    if changes:
        p.store.update(space_id, **changes)
        said = ", ".join(f"{key} {value or 'default'}" for key, value in changes.items())
        p.accounts.audit(who, "set run settings", space_id, said)
        await apply(p, space_id, response)
    return space_answer(p, space_id)


@router.post("/spaces/{owner}/{name}/pause")
async def pause(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    await p.lifecycle.pause(space_id)
    p.accounts.audit(who, "pause", space_id)
    return space_answer(p, space_id)


@router.delete("/spaces/{owner}/{name}")
async def delete(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, str]:
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    await p.lifecycle.delete(space_id)
    p.accounts.audit(who, "delete", space_id)
    return {"id": space_id, "stage": "DELETED"}


def liker_of(request: Request, who: Principal) -> str | None:
    """Who likes: a signed-in user by name, a visitor by the random id of their cookie. A cookie never speaks for
    a user: anyone can write one that says user:NAME."""
    if who.name:
        return f"user:{who.name}"
    visitor = request.cookies.get(LIKER_COOKIE)
    return visitor if visitor and not visitor.startswith("user:") else None


class LikeBody(BaseModel):
    liked: bool = True


@router.post("/spaces/{owner}/{name}/like")
def like(owner: str, name: str, body: LikeBody, request: Request, response: Response,
         p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    """One like per person: a signed-in user's name, or for a visitor a random id kept in a cookie."""
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    liker = liker_of(request, who) or uuid.uuid4().hex
    if not who.name:  # a visitor's id; a user's name never goes into it (it would outlive the session)
        response.set_cookie(LIKER_COOKIE, liker, max_age=10 * 365 * 24 * 3600, samesite="lax", httponly=True)
    count = p.store.set_like(space_id, liker, body.liked)
    return {"id": space_id, "likes": count, "liked": body.liked}


@router.get("/spaces/{owner}/{name}/like")
def liked(owner: str, name: str, request: Request, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    liker = liker_of(request, who)
    return {"id": space_id, "likes": p.store.get(space_id).likes,
            "liked": bool(liker) and p.store.has_liked(space_id, liker or "")}


@router.get("/models")
def models(p: PlatformDep) -> list[dict[str, Any]]:
    """What the model runner serves: task, size, loaded or not, device. Empty when the runner is off."""
    return list(p.runner.models()) if p.runner is not None else []


def metrics_text(p: Platform) -> str:
    """Prometheus text: spaces by stage, then the runner's per-model queue, batch and latency metrics."""
    by_stage: dict[str, int] = {}
    for record in p.store.spaces():
        by_stage[record.stage.value] = by_stage.get(record.stage.value, 0) + 1
    lines = ["# HELP spaces_runtime_spaces Spaces on this platform by stage.", "# TYPE spaces_runtime_spaces gauge"]
    lines += [f'spaces_runtime_spaces{{stage="{stage}"}} {count}' for stage, count in sorted(by_stage.items())]
    lines += memory_metrics(p.supervisor)
    runner = p.runner.metrics_text() if p.runner is not None else ""
    return "\n".join(lines) + "\n" + runner
