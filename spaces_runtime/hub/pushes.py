"""The platform's side of a push (what the hooks call back): check the commit ``main`` would move to before git
moves it, then deploy it and tell the pusher how it goes, line by line, until it runs or fails. Rollbacks deploy
their new commit the same way."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from builder import spec as build_spec
from spaces_runtime import appfiles
from spaces_runtime.errors import NoAppFileError, SpacesError, SpecError
from spaces_runtime.hub.git import (
    INDENT,
    RefUpdate,
    log_lines,
    main_update,
    rejection_lines,
    stage_line,
)
from spaces_runtime.hub.hooks import Push
from spaces_runtime.stages import ERROR_STAGES, Stage

if TYPE_CHECKING:
    from spaces_runtime.wiring.platform import Platform

QUARANTINE = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH")
QUIET_S = 1.0  # how often a deploy stream with nothing to say checks that its deploy is still going


async def deploy_commit(p: Platform, space_id: str, commit: str, author: str | None) -> str:
    """Hand a commit already on ``main`` to the pipeline; returns the version it builds as."""
    owner, name = space_id.split("/", 1)
    archive = await asyncio.to_thread(p.pipeline.commits.export, space_id, commit)
    try:
        return await p.pipeline.accept_upload(owner, name, archive, author=author, commit=commit)
    finally:
        archive.unlink(missing_ok=True)


class Pushes:
    def __init__(self, p: Platform) -> None:
        self.p = p

    # --- pre-receive -------------------------------------------------------------------------------------------
    async def check(self, push: Push, updates: list[RefUpdate], objects: dict[str, str]) -> tuple[bool, list[str]]:
        """May the push land? Only ``main`` deploys, so only its new commit is checked: its files within the
        upload limits and a README whose front matter the builder accepts."""
        main = main_update(updates)
        if main is None:
            return True, []
        if main.deletes:
            return False, rejection_lines(push.space_id, main.old, "deleting main would leave the space without "
                                          "code; to remove the space: spaces delete " + push.space_id)
        try:
            warnings = await asyncio.to_thread(self._check_files, push.space_id, main.new,
                                               self._quarantine(push.space_id, objects))
        except NoAppFileError as exc:  # as on the Hub: it lands, and the space says NO_APP_FILE until it has one
            return True, [f"warning: {exc}"]
        except (SpecError, SpacesError) as exc:
            return False, rejection_lines(push.space_id, main.new, str(exc))
        return True, [f"warning: {w}" for w in warnings]

    def _check_files(self, space_id: str, commit: str, objects: dict[str, str]) -> list[str]:
        archive = self.p.pipeline.commits.export(space_id, commit, objects, require_lfs=True)
        scratch = self.p.settings.data_dir / "tmp"
        try:
            with tempfile.TemporaryDirectory(dir=scratch, prefix="check-") as folder:
                app_dir = appfiles.unpack(archive, Path(folder) / "app", self.p.pipeline.limits)
                return list(build_spec.load(app_dir, space_id.split("/", 1)[1]).warnings)
        finally:
            archive.unlink(missing_ok=True)

    def _quarantine(self, space_id: str, objects: dict[str, str]) -> dict[str, str]:
        """Where the pushed objects wait: only folders of this space's own repository are taken."""
        repo = os.path.realpath(self.p.pipeline.commits.repos.path(space_id))
        kept = {}
        for key in QUARANTINE:
            value = objects.get(key)
            parts = value.split(os.pathsep) if value else []
            if parts and all(os.path.realpath(part.strip('"')).startswith(repo + os.sep) for part in parts):
                kept[key] = value or ""
        return kept

    # --- post-receive -----------------------------------------------------------------------------------------
    async def deploy(self, push: Push, updates: list[RefUpdate]) -> AsyncIterator[str]:
        main = main_update(updates)
        if main is None or main.deletes:
            yield f"spaces-runtime: stored {', '.join(u.ref for u in updates)}; only main deploys"
            return
        self.p.accounts.audit(push.pusher, "push", push.space_id, f"commit {main.new}")
        yield stage_line("deploying", f"{main.new[:7]} to {push.space_id}")
        try:
            version = await deploy_commit(self.p, push.space_id, main.new, push.pusher.name)
        except SpacesError as exc:
            yield stage_line("not deployed", str(exc))
            return
        async for line in self.follow(push, version):
            yield line

    async def follow(self, push: Push, version: str) -> AsyncIterator[str]:
        """The deploy's stages and build log until it ends (RUNNING, an error, or a newer deploy replacing it)."""
        p, space_id = self.p, push.space_id
        await asyncio.sleep(0)  # the deploy's first step (a fresh build log) runs before the log is read
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        pumps = [asyncio.create_task(self._pump_log(space_id, queue)),
                 asyncio.create_task(self._pump_stages(space_id, queue))]
        record = p.store.peek(space_id)
        shown = record.stage.value if record else ""
        yield stage_line(shown)
        try:
            while True:
                try:
                    kind, text = await asyncio.wait_for(queue.get(), QUIET_S)
                except TimeoutError:
                    if p.pipeline.is_deploying(space_id):
                        continue
                    break
                if kind == "end":
                    break
                if kind == "stage" and text not in (shown, Stage.RUNNING.value):  # the end says RUNNING, with the link
                    shown = text
                    yield stage_line(text)
                elif kind == "log":
                    for line in log_lines(text):
                        yield line
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        for line in self._outcome(push, version, shown):
            yield line

    def _outcome(self, push: Push, version: str, shown: str) -> list[str]:
        record = self.p.store.peek(push.space_id)
        if record is None:
            return [stage_line("deleted", f"{push.space_id} was deleted meanwhile")]
        if self.p.pipeline.latest.get(push.space_id) != version:
            return [stage_line("superseded", "a newer deploy replaced this one before it ended")]
        if record.stage is Stage.RUNNING:
            return [stage_line("RUNNING", push.link)]
        lines = [] if record.stage.value == shown else [stage_line(record.stage.value)]
        if record.stage in ERROR_STAGES and record.error:
            lines += [INDENT + line for line in record.error.splitlines()[:3]]
        return lines

    async def _pump_log(self, space_id: str, queue: asyncio.Queue[tuple[str, str]]) -> None:
        lines = self.p.logs.follow(space_id, "build")
        try:
            async for chunk in lines:
                queue.put_nowait(("log", chunk))
        finally:
            queue.put_nowait(("end", ""))
            with contextlib.suppress(Exception):
                await lines.aclose()  # type: ignore[attr-defined]

    async def _pump_stages(self, space_id: str, queue: asyncio.Queue[tuple[str, str]]) -> None:
        async for event in self.p.hub.listen():
            if event.get("type") == "stage" and event.get("id") == space_id:
                queue.put_nowait(("stage", str(event.get("stage"))))
