"""A space's deploy history (main's commits, with the stage each deploy reached) and rollback: a new commit
restoring an older one's files, deployed like any other (the old version serves until the new one runs)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from spaces_runtime.hub.pushes import deploy_commit
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.api import space_answer
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, changeable, seen

router = APIRouter(prefix="/api")


class RollbackBody(BaseModel):
    commit: str


@router.get("/spaces/{owner}/{name}/history")
async def history(owner: str, name: str, p: PlatformDep, who: PrincipalDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
    """Newest first: commit, author, email, date (ISO-8601), message, stage (what its deploy reached; null: never
    deployed), deployed_at, running."""
    space_id = make_space_id(owner, name)
    seen(p, who, space_id)
    entries = await asyncio.to_thread(p.pipeline.commits.history, space_id, limit)
    return [asdict(entry) for entry in entries]


@router.post("/spaces/{owner}/{name}/rollback", status_code=202)
async def rollback(owner: str, name: str, body: RollbackBody, p: PlatformDep, who: PrincipalDep) -> dict[str, Any]:
    """Deploy ``commit``'s files again, as a new commit on main by the caller. Answers once the deploy started
    (follow logs/build, as after an upload)."""
    space_id = make_space_id(owner, name)
    changeable(p, who, space_id)
    commits = p.pipeline.commits
    target = await asyncio.to_thread(commits.repos.resolve, space_id, body.commit)
    subject = next((c.message for c in await asyncio.to_thread(commits.repos.log, space_id, 1000)
                    if c.sha == target), "")
    message = f"Roll back to {target[:7]}" + (f" ({subject})" if subject else "")
    restored = await asyncio.to_thread(commits.repos.restore, space_id, target, commits.author(who.name), message)
    version = await deploy_commit(p, space_id, restored, who.name)
    p.accounts.audit(who, "rollback", space_id, f"to {target} as commit {restored}")
    return {**space_answer(p, space_id), "commit": restored, "restored": target, "uploaded_version": version}
