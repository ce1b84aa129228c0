"""The deployer: the one seam between the platform and ``builder``.

Upload → code version on disk → AppSpec → BuildPlan → environment (virtualenv or image) → supervisor. It owns the
space's stage while building; the supervisor owns it while the app starts and runs. It also answers the gateway's
question "where does owner/name live right now?".
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from builder import plan as build_plan
from builder import spec as build_spec
from spaces_runtime.config import Settings
from spaces_runtime.errors import (
    BuildError,
    ConflictError,
    NoAppFileError,
    SpacesError,
    SpecError,
    StageTransitionError,
)
from spaces_runtime.events import EventHub
from spaces_runtime.gateway.targets import Failed, Missing, Pending, StaticSite, Target, Upstream
from spaces_runtime.logs import LogBook, LogSink
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.remote import PACK_EXCLUDES
from spaces_runtime.server.uploads import UploadLimits, unpack
from spaces_runtime.stages import ERROR_STAGES, SERVING_STAGES, Stage
from spaces_runtime.store import SpaceRecord, Store
from spaces_runtime.supervisor.backend import Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor

log = logging.getLogger(__name__)

KEPT_VERSIONS = 2  # the running code and the one being deployed beside it
STARTING_STAGES = frozenset({Stage.BUILDING, Stage.APP_STARTING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING})


@dataclass(frozen=True)
class BuiltEnvironment:
    env_dir: Path | None = None  # process backend
    image: str | None = None  # docker backend


class EnvironmentBuilder(Protocol):
    """Turns a plan into something a backend can run: a virtualenv (process) or an image (docker)."""

    def build(self, plan: Any, spec: Any, app_dir: Path, log: LogSink) -> BuiltEnvironment: ...


class VenvEnvironmentBuilder:
    def __init__(self, settings: Settings) -> None:
        from builder.venv import VenvBuilder

        self._venvs = VenvBuilder(settings.envs_dir, settings)

    def build(self, plan: Any, spec: Any, app_dir: Path, log: LogSink) -> BuiltEnvironment:
        return BuiltEnvironment(env_dir=self._venvs.build(plan, log))


def card_of(spec: Any) -> dict[str, Any]:
    """What the gallery and the API show of a space: its README front matter, normalised."""
    fields = ("title", "emoji", "color_from", "color_to", "sdk", "sdk_version", "python_version", "app_file",
              "app_port", "short_description", "pinned", "tags", "models", "license", "full_width", "header",
              "disable_embedding", "custom_headers")
    card = {key: getattr(spec, key, None) for key in fields}
    card["warnings"] = list(getattr(spec, "warnings", []) or [])
    return card


class Deployer:
    def __init__(self, settings: Settings, store: Store, logs: LogBook, supervisor: Supervisor, hub: EventHub,
                 environments: EnvironmentBuilder, app_env: Callable[[str], dict[str, str]] | None = None,
                 prepare_models: Callable[[Any, Path], Awaitable[list[str]]] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.logs = logs
        self.supervisor = supervisor
        self.hub = hub
        self.environments = environments
        self.app_env = app_env or (lambda _space_id: {})
        self.prepare_models = prepare_models
        self.stage_listeners: list[Callable[[str], None]] = []  # e.g. the gateway forgetting a cached upstream
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.limits = UploadLimits(settings.max_upload_bytes, settings.max_unpacked_bytes, settings.max_upload_files)

    # --- stage bookkeeping (also the supervisor's on_stage) -----------------------------------------------
    def set_stage(self, space_id: str, stage: Stage, reason: str = "", error: str | None = None) -> None:
        try:
            record = self.store.set_stage(space_id, stage, reason, error)
        except StageTransitionError as exc:
            log.warning("%s: %s (%s)", space_id, exc, reason)
            return
        except SpacesError:
            return  # deleted meanwhile
        for listener in self.stage_listeners:
            listener(space_id)
        self.hub.publish({"type": "stage", "id": space_id, "stage": stage.value, "reason": reason,
                          "error": error, "updated_at": record.updated_at})

    # --- deploys -------------------------------------------------------------------------------------------
    async def accept_upload(self, owner: str, name: str, archive: Path) -> SpaceRecord:
        """Unpack a new code version and start building it; the previous version keeps serving meanwhile."""
        space_id = make_space_id(owner, name)
        self._check_link_is_free(owner, name)
        version_dir = self.settings.apps_dir / owner / name / "versions" / f"{time.time_ns()}"
        app_dir = await asyncio.to_thread(unpack, archive, version_dir, self.limits)
        code = await asyncio.to_thread(build_plan.code_hash, app_dir)
        await self._begin(space_id, "deploy")
        self.store.update(space_id, desired="running", code_hash=code)
        self._launch_deploy(space_id, app_dir)
        return self.store.get(space_id)

    async def deploy_examples(self, folder: Path, owner: str = "examples") -> None:
        """Deploy every app folder under ``folder`` (the operator's own, so copied, not unpacked) unless the same
        code already runs there."""
        for app_dir in sorted(p for p in folder.iterdir() if (p / "README.md").is_file()):
            space_id = make_space_id(owner, app_dir.name)
            code = await asyncio.to_thread(build_plan.code_hash, app_dir)
            record = self.store.find(space_id)
            if record is not None and record.code_hash == code and record.stage not in ERROR_STAGES:
                continue
            version_dir = self.settings.apps_dir / owner / app_dir.name / "versions" / f"{time.time_ns()}"
            ignore = shutil.ignore_patterns(*PACK_EXCLUDES)
            await asyncio.to_thread(shutil.copytree, app_dir, version_dir, ignore=ignore)
            await self._begin(space_id, "example deployed on start")
            self.store.update(space_id, desired="running", code_hash=code)
            self._launch_deploy(space_id, version_dir)

    def _check_link_is_free(self, owner: str, name: str) -> None:
        """`a-b/c` and `a/b-c` would share the host-form link a-b-c.{host}: the first one keeps it."""
        label = f"{owner}-{name}"
        for record in self.store.spaces():
            if f"{record.owner}-{record.name}" == label and (record.owner, record.name) != (owner, name):
                raise ConflictError(f"{owner}/{name} would share the link {label}.{self.settings.public_link_host}"
                                    f" with {record.id}", hint="choose another owner or name")

    async def _begin(self, space_id: str, reason: str) -> None:
        existing = self.store.find(space_id)
        if existing is None:
            self.store.create_or_touch(space_id, Stage.BUILDING, reason)
            self.hub.publish({"type": "created", "id": space_id, "stage": Stage.BUILDING.value})
            return
        serving = existing.stage in SERVING_STAGES and self.supervisor.upstream(space_id) is not None
        if not serving and self.supervisor.stage(space_id) is not None:
            # an older version still starting (or crash-looping) must not report RUNNING over the new build
            await self.supervisor.stop_app(space_id, None)
        self.set_stage(space_id, Stage.RUNNING_BUILDING if serving else Stage.BUILDING, reason)

    def _launch_deploy(self, space_id: str, app_dir: Path, adopt: Instance | None = None) -> None:
        previous = self._tasks.pop(space_id, None)
        if previous is not None and not previous.done():
            previous.cancel()  # a newer upload wins over a build still in progress
        task = asyncio.create_task(self._deploy(space_id, app_dir, adopt), name=f"deploy {space_id}")
        self._tasks[space_id] = task
        task.add_done_callback(lambda t: self._tasks.pop(space_id, None) if self._tasks.get(space_id) is t else None)

    async def _deploy(self, space_id: str, app_dir: Path, adopt: Instance | None = None) -> None:
        self.logs.clear(space_id, "build")
        self.logs.start_section(space_id, "build", f"deploying {space_id}")
        sink = self.logs.sink(space_id, "build")
        try:
            await self._build_and_run(space_id, app_dir, sink, adopt)
        except asyncio.CancelledError:
            sink("build cancelled: a newer version was uploaded")
            raise
        except NoAppFileError as exc:
            self._fail(space_id, app_dir, Stage.NO_APP_FILE, str(exc), sink)
        except SpecError as exc:
            self._fail(space_id, app_dir, Stage.CONFIG_ERROR, str(exc), sink)
        except BuildError as exc:
            detail = f"{exc}\n{exc.log_tail}".strip()
            self._fail(space_id, app_dir, Stage.BUILD_ERROR, detail, sink)
        except SpacesError as exc:
            self._fail(space_id, app_dir, Stage.RUNTIME_ERROR, str(exc), sink)
        except Exception as exc:  # a platform bug must still end in a stage, never a spinner forever
            log.exception("deploy of %s failed", space_id)
            self._fail(space_id, app_dir, Stage.BUILD_ERROR, f"internal error: {exc!r}", sink)
        finally:
            self.logs.close_followers(space_id, "build")

    def _fail(self, space_id: str, app_dir: Path, stage: Stage, message: str, sink: LogSink) -> None:
        sink(f"ERROR: {message}")
        self.set_stage(space_id, stage, "deploy failed", message)
        self._keep_version(space_id, app_dir, worked=False)

    def _keep_version(self, space_id: str, app_dir: Path, worked: bool) -> None:
        """A version that runs becomes the space's code (restarts use it) and older ones go; one that failed is
        removed, unless the space has no code at all yet (then `spaces restart` can retry it)."""
        record = self.store.find(space_id)
        current = Path(record.code_dir) if record is not None and record.code_dir else None
        if worked or current is None:
            self.store.update(space_id, code_dir=str(app_dir))
            self._prune_versions(space_id, keep=app_dir)
        elif current != app_dir:
            shutil.rmtree(_version_root(app_dir), ignore_errors=True)

    async def _build_and_run(self, space_id: str, app_dir: Path, sink: LogSink,
                             adopt: Instance | None = None) -> None:
        spec = await asyncio.to_thread(build_spec.load, app_dir)
        for warning in getattr(spec, "warnings", []) or []:
            sink(f"warning: {warning}")
        self.store.update(space_id, card=card_of(spec))
        if spec.sdk == "static":
            await self._serve_static(space_id, app_dir, sink)
            return
        plan = build_plan.make(spec, self.settings)
        build_id = self.store.start_build(space_id, getattr(plan, "env_hash", None), getattr(plan, "code_hash", None))
        try:
            built = await asyncio.to_thread(self.environments.build, plan, spec, app_dir, sink)
        except BaseException as exc:
            self.store.finish_build(build_id, "failed", str(exc))
            raise
        self.store.finish_build(build_id, "succeeded")
        self.store.update(space_id, env_hash=getattr(plan, "env_hash", None))
        await self._prepare_models(spec, app_dir, sink)
        sink("build succeeded; starting the app")
        launch = self._launch_spec(space_id, spec, app_dir, built)
        if adopt is not None:
            stage = await self.supervisor.adopt(launch, adopt)
        else:
            stage = await self.supervisor.run_app(launch)
        self._keep_version(space_id, app_dir, worked=stage == Stage.RUNNING)

    async def _prepare_models(self, spec: Any, app_dir: Path, sink: LogSink) -> None:
        """Model files the README declares (`runner_models:`) are registered with the runner, and entries of
        `models:` that name a runner model are loaded before the app asks for them; other `models:` entries (hub
        ids the runner does not serve) are the app's own business."""
        if self.prepare_models is None or not (spec.models or spec.runner_models):
            return
        try:
            loaded = await self.prepare_models(spec, app_dir)
        except Exception as exc:  # the app loads them on first use anyway; a preload must not fail a deploy
            sink(f"warning: could not prepare the runner's models {spec.models}: {exc}")
            return
        if loaded:
            sink(f"models loaded in the runner: {', '.join(loaded)}")

    async def _serve_static(self, space_id: str, app_dir: Path, sink: LogSink) -> None:
        await self.supervisor.stop_app(space_id, Stage.STOPPED)  # it may have been a gradio app before
        sink("static site: served by the gateway, nothing to build")
        self._keep_version(space_id, app_dir, worked=True)  # the gateway serves code_dir: set it first
        self.set_stage(space_id, Stage.RUNNING, "static site deployed")

    def _launch_spec(self, space_id: str, spec: Any, app_dir: Path, built: BuiltEnvironment) -> LaunchSpec:
        owner, name = space_id.split("/", 1)
        env = {
            "SPACE_ID": space_id, "SPACE_AUTHOR_NAME": owner, "SPACE_REPO_NAME": name,
            "SPACE_TITLE": str(getattr(spec, "title", name) or name), "SYSTEM": "spaces",
            "SPACE_HOST": f"{owner}-{name}.{self.settings.public_link_host}",
            **self.app_env(space_id),
        }
        timeout = spec.startup_duration_timeout or self.settings.startup_timeout_s
        return LaunchSpec(
            space_id=space_id, sdk=spec.sdk, app_dir=app_dir, app_file=spec.app_file,
            base_path=f"/spaces/{space_id}", env=env, env_dir=built.env_dir, image=built.image,
            app_port=int(getattr(spec, "app_port", 7860) or 7860), startup_timeout_s=float(timeout),
            hardware=self.settings.hardware,
        )

    def _prune_versions(self, space_id: str, keep: Path) -> None:
        root = _version_root(keep)
        if root.parent.name != "versions":
            return
        old = sorted((p for p in root.parent.iterdir() if p != root), key=lambda p: p.name)
        for path in old[: max(0, len(old) - (KEPT_VERSIONS - 1))]:
            shutil.rmtree(path, ignore_errors=True)

    # --- lifecycle commands --------------------------------------------------------------------------------
    async def restart(self, space_id: str) -> SpaceRecord:
        record = self.store.get(space_id)
        if not record.code_dir:
            raise SpecError("this space has no code yet", hint="deploy it first: spaces deploy DIR")
        await self._begin(space_id, "restart requested")
        self.store.update(space_id, desired="running")
        self._launch_deploy(space_id, Path(record.code_dir))
        return self.store.get(space_id)

    async def pause(self, space_id: str) -> SpaceRecord:
        self.store.get(space_id)
        self._cancel(space_id)
        self.store.update(space_id, desired="paused")
        await self.supervisor.stop_app(space_id, Stage.PAUSED)
        self.set_stage(space_id, Stage.PAUSED, "paused by request")
        return self.store.get(space_id)

    async def delete(self, space_id: str) -> None:
        self.store.get(space_id)
        self._cancel(space_id)
        self.set_stage(space_id, Stage.DELETING, "deleted by request")
        await self.supervisor.stop_app(space_id, Stage.DELETING)
        remove_volume = getattr(self.supervisor.backend, "remove_volume", None)
        if remove_volume is not None:  # its /data must not reappear in a new space of the same name
            await asyncio.to_thread(remove_volume, space_id)
        self.store.delete(space_id)
        owner, name = space_id.split("/", 1)
        shutil.rmtree(self.settings.apps_dir / owner / name, ignore_errors=True)
        shutil.rmtree(self.logs.root / space_id, ignore_errors=True)
        self.hub.publish({"type": "deleted", "id": space_id})

    def is_deploying(self, space_id: str) -> bool:
        task = self._tasks.get(space_id)
        return task is not None and not task.done()

    def _cancel(self, space_id: str) -> None:
        task = self._tasks.pop(space_id, None)
        if task is not None and not task.done():
            task.cancel()

    async def restore(self) -> None:
        """After `spaces serve` restarts: bring back every space that should run. Its environment is cached, so
        this is a start, not a rebuild; an app whose container outlived the platform is taken over instead."""
        survivors = {i.space_id: i for i in await self.supervisor.backend.adopt()}
        for record in self.store.spaces():
            survivor = survivors.pop(record.id, None)
            if record.stage == Stage.DELETING:
                self.store.delete(record.id)
            elif record.desired == "running" and record.stage not in ERROR_STAGES and record.code_dir:
                await self._begin(record.id, "platform restarted")
                self._launch_deploy(record.id, Path(record.code_dir), adopt=survivor)
                continue
            if survivor is not None:
                await self.supervisor.backend.stop(survivor, self.settings.stop_grace_s)
        for orphan in survivors.values():  # containers of spaces this platform no longer knows
            await self.supervisor.backend.stop(orphan, self.settings.stop_grace_s)

    async def shutdown(self) -> None:
        for space_id in list(self._tasks):
            self._cancel(space_id)
        await self.supervisor.shutdown()

    # --- the gateway's view --------------------------------------------------------------------------------
    async def target(self, owner: str, name: str) -> Target:
        record = self.store.peek(f"{owner}/{name}")
        if record is None:
            return Missing()
        upstream = self.supervisor.upstream(record.id)
        if record.card.get("sdk") == "static" and record.stage == Stage.RUNNING and record.code_dir:
            return StaticSite(root=Path(record.code_dir))
        if upstream is not None:
            # gradio (GRADIO_ROOT_PATH) and streamlit (baseUrlPath) know their prefix; a docker app does not
            return Upstream(url=upstream, forward_prefix=record.card.get("sdk") != "docker")
        title = str(record.card.get("title") or record.name)
        if record.stage == Stage.SLEEPING:  # the gateway calls wake() and asks again
            return Pending(stage=Stage.SLEEPING, title=title, detail="waking up after a nap")
        if record.stage in ERROR_STAGES:
            return Failed(stage=record.stage, error=record.error or "")
        if record.stage in STARTING_STAGES or record.stage == Stage.RUNNING:
            return Pending(stage=record.stage, title=title, detail=_pending_detail(record.stage))
        return Failed(stage=record.stage, error=f"this space is {record.stage.lower()}; restart it to use it")

    def touch(self, owner: str, name: str) -> None:
        self.supervisor.touch(f"{owner}/{name}")

    async def wake(self, owner: str, name: str) -> None:
        space_id = f"{owner}/{name}"
        record = self.store.find(space_id)
        if record is None or record.stage != Stage.SLEEPING:
            return
        if self.supervisor.stage(space_id) is not None:
            await self.supervisor.wake(space_id)
        elif record.code_dir and space_id not in self._tasks:
            await self._begin(space_id, "woken by a visit")
            self._launch_deploy(space_id, Path(record.code_dir))


    def runtime(self, space_id: str) -> dict[str, Any] | None:
        for instance in self.supervisor.instances():
            if instance.space_id == space_id:
                return {"backend_ref": instance.backend_ref, "upstream": instance.upstream,
                        "started_at": instance.started_at, "backend": self.supervisor.backend.name}
        return None


def _version_root(app_dir: Path) -> Path:
    """versions/N, whether the app folder is versions/N itself or the one folder an archive held inside it."""
    return app_dir if app_dir.parent.name == "versions" else app_dir.parent


def _pending_detail(stage: Stage) -> str:
    if stage in (Stage.BUILDING, Stage.RUNNING_BUILDING):
        return "building the environment"
    return "starting the app"
