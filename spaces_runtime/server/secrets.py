"""A space's secrets and variables over REST, at the paths and in the shapes of the Hub (huggingface_hub's
``add_space_secret``, ``delete_space_secret``, ``get_space_secrets``, ``add_space_variable``,
``get_space_variables``, ``delete_space_variable`` call exactly these):

    POST   /api/spaces/{owner}/{name}/secrets     {key, value, description?}   writers
    DELETE /api/spaces/{owner}/{name}/secrets     {key}                        writers
    GET    /api/spaces/{owner}/{name}/secrets     {KEY: {key, description, updatedAt}}: never a value; writers
    POST   /api/spaces/{owner}/{name}/variables   {key, value, description?} → the variables; writers
    DELETE /api/spaces/{owner}/{name}/variables   {key} → the variables; writers
    GET    /api/spaces/{owner}/{name}/variables   {KEY: {key, value, description, updatedAt}}; who may see it

A change restarts the app when it runs (as on Hugging Face), answered with ``X-Spaces-Restarted: 1``. A space
that is not deployed yet may get them first, so its first start has them. Bodies are read by hand: a validation
error of FastAPI's would echo the body, value included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from spaces_runtime.auth import rules
from spaces_runtime.auth.principal import Principal
from spaces_runtime.auth.secrets import SpaceSecrets
from spaces_runtime.errors import InvalidNameError
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, writable
from spaces_runtime.wiring.platform import Platform

router = APIRouter(prefix="/api/spaces/{owner}/{name}")
RESTARTED = "X-Spaces-Restarted"


def iso(at: float) -> str:
    """The Hub's dates: ISO-8601 in UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def secrets_answer(store: SpaceSecrets, space_id: str) -> dict[str, dict[str, Any]]:
    return {s.key: {"key": s.key, "description": s.description or None, "updatedAt": iso(s.updated_at)}
            for s in store.secrets(space_id)}


def variables_answer(store: SpaceSecrets, space_id: str) -> dict[str, dict[str, Any]]:
    return {v.key: {"key": v.key, "value": v.value, "description": v.description or None,
                    "updatedAt": iso(v.updated_at)} for v in store.variables(space_id)}


async def fields(request: Request, *names: str) -> dict[str, Any]:
    """The JSON body's ``names`` (``key`` required). Messages never repeat the body: it may hold a secret."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise InvalidNameError("the body is not JSON", hint='send {"key": "NAME", "value": "..."}') from None
    if not isinstance(body, dict) or "key" not in body:
        raise InvalidNameError("the body must be a JSON object with a 'key'", hint='{"key": "NAME", ...}')
    if "value" in names and "value" not in body:
        raise InvalidNameError("the body has no 'value'", hint='{"key": "NAME", "value": "..."}')
    return {name: body.get(name) for name in names}


def may_read_variables(p: Platform, who: Principal, space_id: str) -> None:
    """Members (whoever may see the space) read its variables; before its first deploy, its writers."""
    record = p.store.find(space_id)
    if record is None:
        writable(p, who, space_id)
    else:
        rules.require_see(who, space_id, record.private)


async def apply(p: Platform, space_id: str, response: Response) -> None:
    """Restart the app if it should be running, so it starts with the change. A deploy in progress needs none:
    it reads them when it starts the app (and restarting would cancel it for the older code)."""
    record = p.store.find(space_id)
    if record is None or record.desired != "running" or not record.code_dir or p.pipeline.is_deploying(space_id):
        return
    await p.lifecycle.restart(space_id)
    response.headers[RESTARTED] = "1"


# --- secrets ---------------------------------------------------------------------------------------------------
@router.get("/secrets")
def list_secrets(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, dict[str, Any]]:
    space_id = make_space_id(owner, name)
    writable(p, who, space_id)
    return secrets_answer(p.secrets, space_id)


@router.post("/secrets")
async def set_secret(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
                     who: PrincipalDep) -> dict[str, dict[str, Any]]:
    space_id = make_space_id(owner, name)
    writable(p, who, space_id)
    body = await fields(request, "key", "value", "description")
    info = p.secrets.set_secret(space_id, body["key"], body["value"], body["description"])
    p.accounts.audit(who, "set secret", space_id, info.key)  # the name only, ever
    await apply(p, space_id, response)
    return secrets_answer(p.secrets, space_id)


@router.delete("/secrets")
async def delete_secret(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
                        who: PrincipalDep) -> dict[str, dict[str, Any]]:
    space_id = make_space_id(owner, name)
    writable(p, who, space_id)
    key = (await fields(request, "key"))["key"]
    p.secrets.delete_secret(space_id, str(key))
    p.accounts.audit(who, "delete secret", space_id, str(key))
    await apply(p, space_id, response)
    return secrets_answer(p.secrets, space_id)


# --- variables -------------------------------------------------------------------------------------------------
@router.get("/variables")
def list_variables(owner: str, name: str, p: PlatformDep, who: PrincipalDep) -> dict[str, dict[str, Any]]:
    space_id = make_space_id(owner, name)
    may_read_variables(p, who, space_id)
    return variables_answer(p.secrets, space_id)


@router.post("/variables")
async def set_variable(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
                       who: PrincipalDep) -> dict[str, dict[str, Any]]:
    space_id = make_space_id(owner, name)
    writable(p, who, space_id)
    body = await fields(request, "key", "value", "description")
    info = p.secrets.set_variable(space_id, body["key"], body["value"], body["description"])
    p.accounts.audit(who, "set variable", space_id, info.key)
    await apply(p, space_id, response)
    return variables_answer(p.secrets, space_id)


@router.delete("/variables")
async def delete_variable(owner: str, name: str, request: Request, response: Response, p: PlatformDep,
                          who: PrincipalDep) -> dict[str, dict[str, Any]]:
    space_id = make_space_id(owner, name)
    writable(p, who, space_id)
    key = (await fields(request, "key"))["key"]
    p.secrets.delete_variable(space_id, str(key))
    p.accounts.audit(who, "delete variable", space_id, str(key))
    await apply(p, space_id, response)
    return variables_answer(p.secrets, space_id)
