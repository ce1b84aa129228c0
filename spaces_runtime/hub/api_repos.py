"""Creating, deleting, moving and duplicating spaces over the Hub API.

    POST   /api/repos/create           create_repo(repo_type="space", space_sdk, private, space_secrets,
                                       space_variables, space_hardware, space_sleep_time)
    DELETE /api/repos/delete           delete_repo
    POST   /api/repos/move             move_repo: a copy under the new name (code, visibility, secrets,
                                       variables, Hub settings), then the old one is deleted
    POST   /api/spaces/{id}/duplicate  duplicate_repo / duplicate_space: the code and the variables; secrets only
                                       those given (as on the Hub: a duplicate never sees the original's)
    POST   /api/validate-yaml          the README front matter checked by the platform's own builder

A new space gets a README naming its SDK and deploys it at once, as on the Hub: it rests in NO_APP_FILE until its
app file is committed. Only ``type: space`` exists here; other repository types answer 501.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from builder import spec as build_spec
from spaces_runtime.auth import rules
from spaces_runtime.auth.principal import Principal
from spaces_runtime.errors import InvalidNameError, NoAppFileError, SpecError
from spaces_runtime.hub import shapes, tree
from spaces_runtime.hub.answers import HubDep, HubParts
from spaces_runtime.hub.apierrors import PLATFORM, NotSupportedError, error_headers
from spaces_runtime.hub.shapes import HubState
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.names import split_id
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, changeable, seen, writable
from spaces_runtime.stages import Stage
from spaces_runtime.store import SpaceRecord
from spaces_runtime.supervisor.tiers import TIERS
from spaces_runtime.wiring.platform import Platform

router = APIRouter(tags=["hub"])
SPACE_HINT = "create_repo(repo_id, repo_type='space', space_sdk='gradio')"


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidNameError("the body is not a JSON object", hint="use huggingface_hub")
    return body


def _only_spaces(kind: object, what: str) -> None:
    if kind != "space":
        raise NotSupportedError(f"{PLATFORM}: cannot {what} a {kind or 'model'} repository", hint=SPACE_HINT)


def _private(body: dict[str, Any], default: bool = False) -> bool:
    if body.get("visibility") is not None:
        return body["visibility"] in ("private", "protected")
    return bool(body["private"]) if body.get("private") is not None else default


def _exists(request: Request, space_id: str) -> JSONResponse:
    """409 with the space's URL: create_repo(exist_ok=True) reads it from this answer."""
    message = f"{space_id} already exists"
    return JSONResponse({"error": message, "url": f"{request.base_url}spaces/{space_id}"}, status_code=409,
                        headers={"X-Error-Message": message})


def _pairs(items: object, what: str) -> list[dict[str, str]]:
    """space_secrets / space_variables: [{key, value, description?}]."""
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) and "key" in i and "value" in i for i in items):
        raise InvalidNameError(f"{what} must be a list of {{'key': ..., 'value': ...}}", hint="see create_repo")
    return [{"key": str(i["key"]), "value": str(i["value"]), "description": str(i.get("description") or "")}
            for i in items]


@router.post("/api/repos/create")
async def create(request: Request, p: PlatformDep, who: PrincipalDep, parts: HubDep) -> Any:
    body = await _body(request)
    _only_spaces(body.get("type"), "create")
    rules.require_signed_in(who)
    space_id = make_space_id(str(body.get("organization") or who.name), str(body.get("name")))
    if writable(p, who, space_id) is not None:
        return _exists(request, space_id)
    sdk = str(body.get("sdk") or "")
    files = shapes.new_space_files(space_id.split("/", 1)[1], sdk)
    settings = _hub_settings(body)
    secrets, variables = _pairs(body.get("secrets"), "secrets"), _pairs(body.get("variables"), "variables")
    record = _new_record(p, space_id, _private(body))
    try:
        parts.states.change(record, sdk=sdk, sleep_time=settings.sleep_time)
        p.store.update(space_id, hardware=settings.hardware)  # the tier it runs on (deploy.runchoice)
        _set_pairs(p, space_id, secrets, variables)
        await _deploy_files(p, space_id, files, who.name)
    except BaseException:
        _abandon(p, parts, space_id)
        raise
    p.accounts.audit(who, "create", space_id, f"sdk {sdk}" + (" (private)" if record.private else ""))
    return {"url": f"{request.base_url}spaces/{space_id}", "name": space_id, "id": space_id}


def _hub_settings(body: dict[str, Any]) -> HubState:
    """hardware and sleepTimeSeconds of a create or duplicate request, checked."""
    if body.get("volumes"):
        raise NotSupportedError("volumes are not served by spaces-runtime",
                                hint="a space keeps its files in /data, which lasts until the space is deleted")
    hardware, seconds = body.get("hardware"), body.get("sleepTimeSeconds")
    return HubState(hardware=shapes.check_hardware(hardware, TIERS) if hardware is not None else None,
                    sleep_time=shapes.check_sleep_time(seconds) if seconds is not None else None)


def _new_record(p: Platform, space_id: str, private: bool) -> SpaceRecord:
    """The record first, with its visibility, so that a private space is never listed as public meanwhile."""
    p.store.create_or_touch(space_id, Stage.NO_APP_FILE, "created over the Hub API")
    p.store.update(space_id, private=private)
    p.hub.publish({"type": "created", "id": space_id, "stage": Stage.NO_APP_FILE.value})
    return p.store.get(space_id)


def _set_pairs(p: Platform, space_id: str, secrets: list[dict[str, str]], variables: list[dict[str, str]]) -> None:
    for item in secrets:
        p.secrets.set_secret(space_id, item["key"], item["value"], item["description"])
    for item in variables:
        p.secrets.set_variable(space_id, item["key"], item["value"], item["description"])


async def _deploy_files(p: Platform, space_id: str, files: dict[str, str], author: str | None) -> str:
    """A space's first commit (the Hub's "initial commit"), deployed."""
    async with tree.Scratch(p) as scratch:
        scratch.tree.mkdir()
        for name, text in files.items():
            (scratch.tree / name).write_text(text)
        version, _ = await tree.deploy_tree(p, space_id, scratch, author, "initial commit")
    return version


async def _deploy_copy(p: Platform, parts: HubParts, source: SpaceRecord, target: str, author: str | None) -> str:
    """The target gets the source's repository (its whole history, as a move or duplicate on the Hub keeps it)
    and deploys its main. Without git, the code that serves is copied as a first commit."""
    head = parts.files.head(source)
    repos = p.pipeline.commits.repos
    owner, name = target.split("/", 1)
    if head is None:
        async with tree.Scratch(p) as scratch:
            await asyncio.to_thread(tree.copy_code, Path(source.code_dir) if source.code_dir else None, scratch.tree)
            version, _ = await tree.deploy_tree(p, target, scratch, author, f"Duplicate from {source.id}")
        return version
    await asyncio.to_thread(repos.remove, target)  # a leftover of a space by that name deleted long ago
    await asyncio.to_thread(shutil.copytree, repos.path(source.id), repos.path(target), symlinks=True)
    await asyncio.to_thread(repos.ensure, target)
    p.pipeline.commits.lfs.share(source.id, target)  # its LFS files come along with the history
    archive = await asyncio.to_thread(p.pipeline.commits.export, target, head)
    try:
        return await p.pipeline.accept_upload(owner, name, archive, author=author, commit=head)
    finally:
        archive.unlink(missing_ok=True)


def _abandon(p: Platform, parts: HubParts, space_id: str) -> None:
    """A creation that failed half-way leaves nothing behind."""
    p.pipeline.cancel(space_id)
    p.pipeline.commits.forget(space_id)
    p.store.delete(space_id)
    parts.states.drop(space_id)
    p.secrets.drop_space(space_id)
    p.hub.publish({"type": "deleted", "id": space_id})


async def _delete(p: Platform, parts: HubParts, space_id: str) -> None:
    await p.lifecycle.delete(space_id)
    parts.states.drop(space_id)
    p.secrets.drop_space(space_id)  # the Hub deletes a space's secrets with it


@router.delete("/api/repos/delete")
async def delete(request: Request, p: PlatformDep, who: PrincipalDep, parts: HubDep) -> dict[str, str]:
    body = await _body(request)
    _only_spaces(body.get("type"), "delete")
    rules.require_signed_in(who)
    space_id = make_space_id(str(body.get("organization") or who.name), str(body.get("name")))
    changeable(p, who, space_id)
    await _delete(p, parts, space_id)
    p.accounts.audit(who, "delete", space_id)
    return {}


@router.post("/api/repos/move")
async def move(request: Request, p: PlatformDep, who: PrincipalDep, parts: HubDep) -> Any:
    body = await _body(request)
    _only_spaces(body.get("type"), "move")
    source = changeable(p, who, make_space_id(*split_id(str(body.get("fromRepo")))))
    target = make_space_id(*split_id(str(body.get("toRepo"))))
    if writable(p, who, target) is not None:
        return _exists(request, target)
    values = p.secrets.secret_values(source.id)
    described = {s.key: s.description for s in p.secrets.secrets(source.id)}
    secrets = [{"key": k, "value": v, "description": described.get(k, "")} for k, v in values.items()]
    variables = [v.model_dump() for v in p.secrets.variables(source.id)]
    await _clone(p, parts, who, source, target, source.private, secrets, variables, parts.states.get(source))
    await _delete(p, parts, source.id)
    p.accounts.audit(who, "move", source.id, f"to {target}")
    return {}


@router.post("/api/spaces/{owner}/{name}/duplicate")
async def duplicate(owner: str, name: str, request: Request, p: PlatformDep, who: PrincipalDep,
                    parts: HubDep) -> Any:
    body = await _body(request)
    source = seen(p, who, make_space_id(owner, name))
    target = make_space_id(*split_id(str(body.get("repository"))))
    if writable(p, who, target) is not None:
        return _exists(request, target)
    given = {v["key"]: v for v in _pairs(body.get("variables"), "variables")}
    variables = [v for v in (v.model_dump() for v in p.secrets.variables(source.id)) if v["key"] not in given]
    await _clone(p, parts, who, source, target, _private(body, source.private),
                 _pairs(body.get("secrets"), "secrets"), [*variables, *given.values()], _hub_settings(body))
    p.accounts.audit(who, "duplicate", target, f"from {source.id}")
    return {"url": f"{request.base_url}spaces/{target}"}


async def _clone(p: Platform, parts: HubParts, who: Principal, source: SpaceRecord, target: str, private: bool,
                 secrets: list[dict[str, str]], variables: list[dict[str, Any]], settings: HubState) -> None:
    record = _new_record(p, target, private)
    try:
        parts.states.change(record, sdk=source.card.get("sdk") or parts.states.get(source).sdk,
                            sleep_time=settings.sleep_time)
        p.store.update(record.id, hardware=settings.hardware or source.hardware)
        _set_pairs(p, target, secrets, [{**v, "description": v.get("description") or ""} for v in variables])
        await _deploy_copy(p, parts, source, target, who.name)
    except BaseException:
        _abandon(p, parts, target)
        raise


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request, _: PrincipalDep) -> Any:
    """The README's front matter as the builder reads it; a missing app file is no error yet (the commit may
    bring it). huggingface_hub turns a 400's ``errors`` into a ValueError before it uploads anything."""
    body = await _body(request)
    _only_spaces(body.get("repoType"), "validate the README of")
    with tempfile.TemporaryDirectory(prefix="validate-") as folder:
        Path(folder, "README.md").write_text(str(body.get("content") or ""))
        try:
            warnings = build_spec.load(Path(folder), "space").warnings
        except NoAppFileError:
            warnings = []
        except SpecError as exc:
            return JSONResponse({"errors": [{"message": str(exc)}], "warnings": []}, status_code=400,
                                headers=error_headers(request.url.path, exc))
    return {"errors": [], "warnings": [{"message": w} for w in warnings]}

