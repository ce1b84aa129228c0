"""Upload → code version on disk → AppSpec → BuildPlan → environment (virtualenv or image) → supervisor.

One deploy task per space: a newer upload cancels the build still in progress. The previous version keeps serving
until the new one is ready (the supervisor swaps them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from builder import plan as build_plan
from builder import spec as build_spec
from builder.children import BUILD_CONTROL, BuildControl
from builder.plan import BuildPlan
from builder.spec import AppSpec
from spaces_runtime import appfiles
from spaces_runtime.config import Settings
from spaces_runtime.deploy import runchoice
from spaces_runtime.deploy.card import card_of
from spaces_runtime.deploy.environments import BuiltEnvironment, EnvironmentBuilder
from spaces_runtime.deploy.stagesink import StageSink
from spaces_runtime.deploy.versions import discard_version, keep_version, new_version_dir, version_root
from spaces_runtime.errors import BuildError, ConflictError, NoAppFileError, SpacesError, SpecError
from spaces_runtime.events import EventHub
from spaces_runtime.hub.commits import SpaceCommits
from spaces_runtime.logs import LogBook, LogSink
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.runner import catalog
from spaces_runtime.stages import ERROR_STAGES, SERVING_STAGES, Stage
from spaces_runtime.store import Store
from spaces_runtime.supervisor.backend import Instance, LaunchSpec
from spaces_runtime.supervisor.loop import Supervisor
from spaces_runtime.supervisor.tiers import TIERS

log = logging.getLogger(__name__)

# per space: env vars the platform adds (its variables and secrets, the runner's address and token)
AppEnv = Callable[[str], dict[str, str]]
SecretKeys = Callable[[str], frozenset[str]]  # which of those are secrets (the swarm backend hands them apart)
ModelPreparer = Callable[[AppSpec, Path], Awaitable[list[str]]]


class Pipeline:
    def __init__(self, settings: Settings, store: Store, logs: LogBook, supervisor: Supervisor, stages: StageSink,
                 hub: EventHub, environments: EnvironmentBuilder, app_env: AppEnv | None = None,
                 prepare_models: ModelPreparer | None = None, commits: SpaceCommits | None = None,
                 secret_keys: SecretKeys | None = None) -> None:
        self.settings = settings
        self.store = store
        self.logs = logs
        self.supervisor = supervisor
        self.stages = stages
        self.hub = hub
        self.environments = environments
        self.app_env: AppEnv = app_env or (lambda _space_id: {})
        self.secret_keys: SecretKeys = secret_keys or (lambda _space_id: frozenset())
        self.prepare_models = prepare_models
        self.commits = commits or SpaceCommits(settings, store, stages)  # every deploy is a commit (hub/commits.py)
        self.limits = appfiles.UploadLimits(settings.max_upload_bytes, settings.max_unpacked_bytes,
                                            settings.max_upload_files)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._superseded: dict[asyncio.Task[None], str] = {}  # cancelled deploy → the version that replaced it
        self.latest: dict[str, str] = {}  # space → the version of its newest deploy

    # --- entry points ------------------------------------------------------------------------------------------
    async def accept_upload(self, owner: str, name: str, archive: Path, author: str | None = None,
                            commit: str | None = None) -> str:
        """Unpack a new code version and start building it; the previous version keeps serving meanwhile.
        The upload becomes a commit of the space's repository by ``author``, unless it is ``commit``'s files
        already (a push, a rollback). Returns the new version's number."""
        space_id = make_space_id(owner, name)
        self._check_link_is_free(owner, name)
        version_dir = new_version_dir(self.settings.apps_dir, owner, name)
        app_dir = await asyncio.to_thread(appfiles.unpack, archive, version_dir, self.limits)
        code = await asyncio.to_thread(appfiles.code_hash, app_dir)
        await self.commits.record(space_id, app_dir, version_root(app_dir).name, author, commit)
        await self.begin(space_id, "deploy")
        self.store.update(space_id, desired="running", code_hash=code)
        self.launch(space_id, app_dir)
        return version_root(app_dir).name

    async def deploy_examples(self, folder: Path, owner: str = "examples") -> None:
        """Deploy every app folder under ``folder`` (the operator's own, so copied, not unpacked) unless the same
        code already runs there."""
        for app_dir in sorted(p for p in folder.iterdir() if (p / "README.md").is_file()):
            space_id = make_space_id(owner, app_dir.name)
            code = await asyncio.to_thread(appfiles.code_hash, app_dir)
            record = self.store.find(space_id)
            if record is not None and record.code_hash == code and record.stage not in ERROR_STAGES:
                continue
            version_dir = new_version_dir(self.settings.apps_dir, owner, app_dir.name)
            await asyncio.to_thread(appfiles.copy_app, app_dir, version_dir)
            await self.commits.record(space_id, version_dir, version_dir.name, None, message="Example deployed")
            await self.begin(space_id, "example deployed on start")
            self.store.update(space_id, desired="running", code_hash=code)
            self.launch(space_id, version_dir)

    def _check_link_is_free(self, owner: str, name: str) -> None:
        """`a-b/c` and `a/b-c` would share the host-form link a-b-c.{host}: the first one keeps it."""
        label = f"{owner}-{name}"
        for record in self.store.spaces():
            if f"{record.owner}-{record.name}" == label and (record.owner, record.name) != (owner, name):
                raise ConflictError(f"{owner}/{name} would share the link {label}.{self.settings.public_link_host}"
                                    f" with {record.id}", hint="choose another owner or name")

    async def begin(self, space_id: str, reason: str) -> None:
        """Enter BUILDING (or RUNNING_BUILDING while an older version serves) for a deploy about to launch."""
        existing = self.store.find(space_id)
        if existing is None:
            self.store.create_or_touch(space_id, Stage.BUILDING, reason)
            self.hub.publish({"type": "created", "id": space_id, "stage": Stage.BUILDING.value})
            return
        serving = existing.stage in SERVING_STAGES and self.supervisor.upstream(space_id) is not None
        if not serving and self.supervisor.stage(space_id) is not None:
            # an older version still starting (or crash-looping) must not report RUNNING over the new build
            await self.supervisor.stop_app(space_id, None)
        self.stages(space_id, Stage.RUNNING_BUILDING if serving else Stage.BUILDING, reason)

    # --- deploy tasks --------------------------------------------------------------------------------------------
    def launch(self, space_id: str, app_dir: Path, adopt: Instance | None = None) -> None:
        self.cancel(space_id, superseded_by=version_root(app_dir).name)  # a newer upload wins over a build
        self.latest[space_id] = version_root(app_dir).name
        task = asyncio.create_task(self._deploy(space_id, app_dir, adopt), name=f"deploy {space_id}")
        self._tasks[space_id] = task
        task.add_done_callback(lambda t: self._tasks.pop(space_id, None) if self._tasks.get(space_id) is t else None)

    def is_deploying(self, space_id: str) -> bool:
        task = self._tasks.get(space_id)
        return task is not None and not task.done()

    def cancel(self, space_id: str, superseded_by: str | None = None) -> None:
        task = self._tasks.pop(space_id, None)
        if task is not None and not task.done():
            if superseded_by is not None:
                self._superseded[task] = superseded_by
            task.cancel()

    def cancel_all(self) -> None:
        for space_id in list(self._tasks):
            self.cancel(space_id)

    async def _deploy(self, space_id: str, app_dir: Path, adopt: Instance | None) -> None:
        self.logs.clear(space_id, "build")
        self.logs.start_section(space_id, "build", f"deploying {space_id}")
        sink = self.logs.sink(space_id, "build")
        try:
            await self._build_and_run(space_id, app_dir, sink, adopt)
        except asyncio.CancelledError:
            newer = self._superseded.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            if newer is not None:  # a stop of the platform keeps the version: the next start resumes it
                sink(f"build cancelled: superseded by a newer upload (version {newer})")
                discard_version(self.store, space_id, app_dir)
            raise
        except NoAppFileError as exc:
            self._fail(space_id, app_dir, Stage.NO_APP_FILE, str(exc), sink)
        except SpecError as exc:
            self._fail(space_id, app_dir, Stage.CONFIG_ERROR, str(exc), sink)
        except BuildError as exc:
            # the failing output streamed into the build log above this line, and the stage's error carries it
            # below the summary: neither repeats it in other words
            summary = f"{exc.summary} ({exc.hint})" if exc.summary and exc.hint else exc.summary or str(exc)
            self._fail(space_id, app_dir, Stage.BUILD_ERROR, f"{summary}\n{exc.log_tail}".strip(), sink, summary)
        except SpacesError as exc:
            self._fail(space_id, app_dir, Stage.RUNTIME_ERROR, str(exc), sink)
        except Exception as exc:  # a platform bug must still end in a stage, never a spinner forever
            log.exception("deploy of %s failed", space_id)
            self._fail(space_id, app_dir, Stage.BUILD_ERROR, f"internal error: {exc!r}", sink)
        finally:
            self.logs.close_followers(space_id, "build")

    def _fail(self, space_id: str, app_dir: Path, stage: Stage, message: str, sink: LogSink,
              logged: str = "") -> None:
        sink(f"ERROR: {logged or message}")
        self.stages(space_id, stage, "deploy failed", message)
        keep_version(self.store, space_id, app_dir, worked=False)

    # --- the steps -------------------------------------------------------------------------------------------------
    async def _build_and_run(self, space_id: str, app_dir: Path, sink: LogSink, adopt: Instance | None) -> None:
        spec = await asyncio.to_thread(build_spec.load, app_dir, space_id.split("/", 1)[1])
        for warning in spec.warnings:
            sink(f"warning: {warning}")
        self.store.update(space_id, card=card_of(spec))
        if spec.sdk == "static":
            await self._serve_static(space_id, app_dir, sink)
            return
        plan = build_plan.make(spec, self.settings)
        built = await self._build(space_id, plan, spec, app_dir, sink)
        await self._prepare_models(spec, app_dir, sink)
        sink("build succeeded; starting the app")
        launch = self.launch_spec(space_id, spec, app_dir, built, sink)
        stage = await (self.supervisor.adopt(launch, adopt) if adopt else self.supervisor.run_app(launch))
        waiting = self.supervisor.waiting(space_id) if stage is Stage.APP_STARTING else None
        if waiting:  # it starts by itself once its node is back: this version is the one that will run
            sink(f"the app waits for its node: {waiting}")
        keep_version(self.store, space_id, app_dir, worked=stage == Stage.RUNNING or bool(waiting))

    async def _build(self, space_id: str, plan: BuildPlan, spec: AppSpec, app_dir: Path,
                     sink: LogSink) -> BuiltEnvironment:
        build_id = self.store.start_build(space_id, plan.env_hash, self.store.get(space_id).code_hash)
        # follows the build into its worker thread: builder.children stops its processes at the deadline, and here
        # when the deploy is cancelled (a thread cannot be cancelled, its uv or docker build can)
        control = BuildControl(self.settings.build_timeout_s)
        BUILD_CONTROL.set(control)
        try:
            built = await asyncio.to_thread(self.environments.build, plan, spec, app_dir, sink)
        except BaseException as exc:
            control.stop()
            self.store.finish_build(build_id, "failed", str(exc))
            raise
        finally:
            control.finish()
        self.store.finish_build(build_id, "succeeded")
        self.store.update(space_id, env_hash=plan.env_hash)
        return built

    async def _prepare_models(self, spec: AppSpec, app_dir: Path, sink: LogSink) -> None:
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
        keep_version(self.store, space_id, app_dir, worked=True)  # the gateway serves code_dir: set it first
        self.stages(space_id, Stage.RUNNING, "static site deployed")

    def launch_spec(self, space_id: str, spec: AppSpec, app_dir: Path, built: BuiltEnvironment,
                    sink: LogSink | None = None) -> LaunchSpec:
        owner, name = space_id.split("/", 1)
        env = {
            "SPACE_ID": space_id, "SPACE_AUTHOR_NAME": owner, "SPACE_REPO_NAME": name,
            "SPACE_TITLE": spec.title or name,
            "SPACE_HOST": f"{owner}-{name}.{self.settings.public_link_host}",
            **self.app_env(space_id),
        }
        timeout = spec.startup_duration_timeout or self.settings.startup_timeout_s
        hardware, replicas = self.run_choices(space_id, spec)
        for choice, what in ((hardware, "hardware"), (replicas, "replicas")):
            if sink is not None:
                sink(f"==> {what}: {choice.value} ({choice.source})")
                if choice.warning:
                    sink(f"warning: {choice.warning}")
        return LaunchSpec(
            space_id=space_id, sdk=spec.sdk, app_dir=app_dir, app_file=spec.app_file,
            base_path=f"/spaces/{space_id}", env=env, env_dir=built.env_dir, image=built.image,
            app_port=spec.app_port, startup_timeout_s=float(timeout), hardware=str(hardware.value),
            replicas=int(replicas.value), secret_keys=self.secret_keys(space_id) & env.keys(),
            sdk_version=spec.sdk_version,  # sdk_eras: the probe and flags of the app's SDK version
            uses_runner=catalog.uses_runner(spec.models, [str(m.get("name")) for m in spec.runner_models]),
        )

    def run_choices(self, space_id: str, spec: AppSpec) -> tuple[runchoice.Choice, runchoice.Choice]:
        """The tier and the replicas the space runs with, and where each came from (deploy/runchoice.py)."""
        record = self.store.get(space_id)
        return (runchoice.hardware(record.hardware, spec.suggested_hardware, self.settings.hardware, TIERS),
                runchoice.replicas(record.replicas, spec.replicas, self.supervisor.backend_name))
