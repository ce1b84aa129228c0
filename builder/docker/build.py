"""AppSpec + BuildPlan → an image in the local engine, in three phases: base image, shared SDK image, app image.

Each image is tagged by what it holds and looked up before anything is built. Builds run through BuildKit (see
``builder.docker.engine``) with the build's index and CA settings as secrets; the progress is streamed line by
line to the build log, and a failing step becomes a BuildError naming the step with its output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import docker.errors

from builder import pythons, releases
from builder.children import run_streamed
from builder.docker import progress, render
from builder.docker.base import ensure_base_image
from builder.docker.engine import BuildCli, find_build_cli, image_id
from builder.plan import BuildPlan
from builder.spec import AppSpec
from builder.uverrors import explain_install_failure
from builder.venv import find_uv
from spaces_runtime.appfiles import code_hash, copy_app
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError
from spaces_runtime.logs import LogSink, mask, maskable

HOST_CA_BUNDLES = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pki/tls/certs/ca-bundle.crt"))
# what an image was built from: `spaces gc` (spaces_runtime.housekeeping) keeps the images a space still needs
KIND_LABEL = "spaces-runtime.kind"
ENV_LABEL = "spaces-runtime.env-hash"
CODE_LABEL = "spaces-runtime.code-hash"
SDK_LABEL = "spaces-runtime.sdk-image"
# a brought Python's installation without what only building or testing CPython needs (its test suite is a third)
_NOT_RUNTIME = shutil.ignore_patterns("test", "tests", "idle_test", "*.a", "man")
SYSTEM_PREFIXES = (Path("/usr"), Path("/usr/local"), Path("/"))  # shared with the distribution: not copyable
_MINOR = "import sys; print('%d.%d' % sys.version_info[:2])"
_BASE_PYTHONS: dict[str, str] = {}  # base image id → its python3's minor version


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    id: str
    reused: bool  # found, not built
    app_port: int = 7860


@dataclass(frozen=True)
class SpaceInputs:
    """What a space gives the build of its own Dockerfile, as on Hugging Face: its variables as build args, its
    secrets as BuildKit secrets (`RUN --mount=type=secret,id=KEY` reads /run/secrets/KEY), never in a layer."""

    variables: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)


InputsOf = Callable[[Path], SpaceInputs]  # an app folder → its space's variables and secrets (the wiring knows)


def host_ca_bundle(settings: Settings) -> Path | None:
    """SPACES_CA_BUNDLE, else the host's own trust store: builds trust what the host trusts, which is what
    makes them work behind a TLS-intercepting proxy. Only ever a build secret."""
    if settings.ca_bundle is not None:
        return settings.ca_bundle
    return next((p for p in HOST_CA_BUNDLES if p.is_file()), None)


class ImageBuilder:
    """Blocking; call it from a worker thread. ``environ`` is the platform's environment (the CLI passes
    ``os.environ``): the docker CLI needs PATH, HOME and DOCKER_HOST from it."""

    def __init__(self, client: docker.DockerClient, settings: Settings, *,
                 environ: Mapping[str, str] | None = None, work_dir: Path | None = None,
                 inputs_of: InputsOf | None = None) -> None:
        self.client = client
        self.settings = settings
        self.environ = dict(environ or {})
        self.work_dir = work_dir
        if work_dir is not None:  # build contexts go there; only bootstrapping a base image made it before
            work_dir.mkdir(parents=True, exist_ok=True)
        self.inputs_of = inputs_of
        self._cli: BuildCli | None = None

    @property
    def cli(self) -> BuildCli:
        if self._cli is None:
            self._cli = find_build_cli()
        return self._cli

    def build(self, spec: AppSpec, plan: BuildPlan, log: LogSink, inputs: SpaceInputs | None = None) -> BuiltImage:
        """The app's image, built now or found; raises BuildError naming the failing step. ``inputs``: the
        space's variables and secrets for its own Dockerfile (default: ``inputs_of`` the folder)."""
        code = code_hash(spec.folder)
        if plan.sdk == "docker":
            if inputs is None:
                inputs = self.inputs_of(spec.folder) if self.inputs_of is not None else SpaceInputs()
            return self._build_own_dockerfile(spec, plan, code, log, inputs)
        log("==> phase 1/3: base image")
        base = ensure_base_image(self.client, self.settings.base_image, log, work_dir=self.work_dir)
        as_of, era_line = releases.era_date(plan, self.settings.ca_bundle)  # the same rule as virtualenvs
        log(era_line)
        log("==> phase 2/3: SDK image")
        brought, python = self._python_for(plan, base, log)
        image_plan = plan if python == plan.python_version else replace(plan, python_version=python)
        sdk = self.sdk_image(render.sdk_image_for(image_plan, base, releases.exclude_newer(as_of), brought), log)
        log("==> phase 3/3: app image")
        app = render.app_image_for(plan, spec.packages, sdk.tag, spec.package_lines,
                                   exclude_newer=releases.exclude_newer(as_of))
        dockerfile = render.render_dockerfile(app)
        tag = render.app_tag(plan.env_hash, sdk.id, app.apt_packages, dockerfile, code)
        found = image_id(self.client, tag)
        if found:
            log(f"==> image {tag} (built before, reused)")
            return BuiltImage(tag, found, reused=True)
        with tempfile.TemporaryDirectory(prefix="spaces-ctx-", dir=self.work_dir) as ctx:
            context = Path(ctx)
            copy_app(spec.folder, context / "app")
            (context / ".spaces").mkdir()
            for name, text in render.requirement_files(app).items():
                (context / ".spaces" / name).write_text(text)
            (context / "Dockerfile").write_text(dockerfile)
            image = self._buildkit(context, tag, "app", log, plan,
                                   labels={ENV_LABEL: plan.env_hash, CODE_LABEL: code, SDK_LABEL: sdk.tag})
        return BuiltImage(tag, image, reused=False)

    def sdk_image(self, image: render.SdkImage, log: LogSink) -> BuiltImage:
        """The shared SDK image, built once per machine per (base, SDK version, Python)."""
        base_id = image_id(self.client, image.base_image) or image.base_image
        tag = render.sdk_tag(image, base_id)
        found = image_id(self.client, tag)
        if found:
            log(f"==> SDK image {tag} (shared, reused)")
            return BuiltImage(tag, found, reused=True)
        log(f"==> building SDK image {tag}")
        with tempfile.TemporaryDirectory(prefix="spaces-sdk-", dir=self.work_dir) as ctx:
            Path(ctx, "Dockerfile").write_text(render.render_sdk_dockerfile(image))
            if image.brought is not None:
                log(f"    copying {image.brought.describe} from {image.brought.prefix} into the build context")
                shutil.copytree(image.brought.prefix, Path(ctx, "python"), symlinks=True, ignore=_NOT_RUNTIME)
            built = self._buildkit(Path(ctx), tag, "sdk", log, None)
        return BuiltImage(tag, built, reused=False)

    def build_context(self, context: Path, tag: str, kind: str, log: LogSink) -> str:
        """A prepared context with its Dockerfile, one of our own (it gets the index settings): the image id."""
        return self._buildkit(context, tag, kind, log, None)

    def _python_for(self, plan: BuildPlan, base: str, log: LogSink) -> tuple[render.BroughtPython | None, str]:
        """The SDK image's Python: the base image's when the plan asks for it; else the host's interpreter of that
        version (found as the process backend finds one) to copy in, as images cannot download one either; with
        SPACES_PYTHON_NEAREST, the nearest of the two. Returns what to copy (None: nothing) and its minor."""
        if not plan.needs_env:
            return None, plan.python_version
        have = self._base_python(base)
        if pythons.parse_request(plan.python_version)[:2] == pythons.parse_request(have)[:2]:
            return None, plan.python_version
        found = pythons.discover(self.settings, self.environ, pythons.uv_python_dir(find_uv(), self.environ))
        choice = pythons.for_image(plan.python_version, have, found, origin=plan.python_origin,
                                   nearest=self.settings.python_nearest)
        if choice.interpreter is None:  # the nearest is the base image's own
            log(f"==> {choice.note}")
            return None, have
        prefix = choice.interpreter.path.parent.parent
        minor = choice.interpreter.minor_version
        if prefix in SYSTEM_PREFIXES or not (prefix / "lib" / f"python{minor}" / "os.py").is_file():
            raise BuildError(f"python_version {plan.python_version}: the base image {base} has Python {have}, and "
                             f"the host's Python {choice.interpreter.full_version} ({choice.interpreter.path}) is "
                             "a system install that cannot be copied into an image",
                             hint=f"install a self-contained Python {minor} (pyenv install {minor}, or uv python "
                                  f"install {minor}) and list it in SPACES_PYTHONS, or set SPACES_BASE_IMAGE to "
                                  f"an image with Python {minor}")
        log(f"==> {choice.note}; the base image has Python {have}, so the SDK image gets a copy of it")
        return render.BroughtPython(str(prefix), choice.interpreter.full_version, choice.interpreter.source), minor

    def _base_python(self, base: str) -> str:
        """The base image's python3 version ("3.11"), asked once per image id."""
        key = image_id(self.client, base) or base
        if key not in _BASE_PYTHONS:
            try:
                out = self.client.containers.run(base, ["python3", "-c", _MINOR], remove=True, network_disabled=True)
            except docker.errors.DockerException as exc:
                raise BuildError(f"cannot run python3 in the base image {base}: {exc}",
                                 hint="SPACES_BASE_IMAGE must name an image with python3 on PATH") from None
            _BASE_PYTHONS[key] = out.decode().strip()
        return _BASE_PYTHONS[key]

    def _build_own_dockerfile(self, spec: AppSpec, plan: BuildPlan, code: str, log: LogSink,
                              inputs: SpaceInputs) -> BuiltImage:
        # variables are build args, so they key the image too; secrets do not (BuildKit never caches on them, and
        # a digest of a short secret in a tag could be guessed back)
        tag = render.docker_app_tag(_with_variables(code, inputs.variables), plan.app_port)
        found = image_id(self.client, tag)
        if found:
            log(f"==> image {tag} (built before, reused)")
            return BuiltImage(tag, found, reused=True, app_port=plan.app_port)
        log(f"==> building the app's own {spec.app_file} (app_port {plan.app_port})")
        # a Dockerfile that declares `ARG BASE_IMAGE` (ours, `spaces init --sdk docker`) gets one that exists
        # here, pulled or bootstrapped, so it builds air-gapped too; others ignore the argument
        base = ensure_base_image(self.client, self.settings.base_image, log, work_dir=self.work_dir)
        with tempfile.TemporaryDirectory(prefix="spaces-ctx-", dir=self.work_dir) as ctx:
            copy_app(spec.folder, Path(ctx, "app"))
            # the user's own Dockerfile gets the CA bundle only: index URLs may carry the operator's credentials
            built = self._buildkit(Path(ctx, "app"), tag, "app", log, None, dockerfile=spec.app_file,
                                   trusted=False, build_args={**inputs.variables, "BASE_IMAGE": base},
                                   labels={ENV_LABEL: plan.env_hash, CODE_LABEL: code},
                                   space_secrets=inputs.secrets)
        return BuiltImage(tag, built, reused=False, app_port=plan.app_port)

    def _buildkit(self, context: Path, tag: str, kind: str, log: LogSink, plan: BuildPlan | None,
                  dockerfile: str = "Dockerfile", trusted: bool = True,
                  build_args: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                  space_secrets: Mapping[str, str] | None = None) -> str:
        """``trusted``: the Dockerfile is one of our templates, so it may see the index settings too.
        ``space_secrets``: the space's own secrets, for its own Dockerfile; files in a 0700 folder that goes when
        the build ends, and masked in what the build prints."""
        args = [f"--build-arg={key}={value}" for key, value in (build_args or {}).items()]
        args += [f"--label={key}={value}" for key, value in (labels or {}).items()]
        with tempfile.TemporaryDirectory(prefix="spaces-secrets-", dir=self.work_dir) as secrets:
            folder = Path(secrets)  # mkdtemp makes it 0700
            argv = [*self.cli.argv, "--progress=plain", "-t", tag, "-f", str(context / dockerfile),
                    "--label", f"{KIND_LABEL}={kind}", *args, *self._secrets(folder, trusted),
                    *_space_secrets(folder, space_secrets or {}), str(context)]
            rc, lines = self._stream(argv, log)
        if rc != 0:
            hidden = maskable((space_secrets or {}).values())  # the error's tail reaches the API: no value in it
            raise _explain([mask(line, hidden) for line in lines] if hidden else lines, rc, plan)
        found = image_id(self.client, tag)
        if found is None:
            raise BuildError(f"docker build reported success but image {tag} is not in the engine")
        return found

    def _secrets(self, folder: Path, trusted: bool = True) -> list[str]:
        ca = host_ca_bundle(self.settings)
        if not trusted:
            return ["--secret", f"id=ca_bundle,src={ca}"] if ca else []
        env_file = folder / "build_env"
        env_file.touch(mode=0o600)
        env_file.write_text(render.build_env(ca is not None, self.settings.index_url,
                                             self.settings.extra_index_url))
        args = ["--secret", f"id=build_env,src={env_file}"]
        return [*args, "--secret", f"id=ca_bundle,src={ca}"] if ca else args

    def _stream(self, argv: list[str], log: LogSink) -> tuple[int, list[str]]:
        """Run the build, logging each line as it comes; the exit code and all lines (a failed step is found in
        them by its header, which may be far from the end)."""
        return run_streamed(argv, log, {**self.environ, **self.cli.env}, keep=None)


def _space_secrets(folder: Path, values: Mapping[str, str]) -> list[str]:
    """`--secret id=KEY,src=FILE` for each of the space's secrets; files by number, never by the key's name."""
    args: list[str] = []
    for number, (key, value) in enumerate(sorted(values.items())):
        path = folder / f"space-secret-{number}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(value)
        args += ["--secret", f"id={key},src={path}"]
    return args


def _with_variables(code: str, variables: Mapping[str, str]) -> str:
    if not variables:
        return code  # the tag of a space without variables stays what it was
    return hashlib.sha256(json.dumps([code, sorted(variables.items())]).encode()).hexdigest()


def _explain(lines: list[str], rc: int, plan: BuildPlan | None) -> BuildError:
    """A failed requirements step names the requirements.txt line like the process backend does."""
    error = progress.failure(lines, rc)
    failed = [s for s in progress.parse(lines).values() if s.error is not None]
    if plan is not None and failed and "uv pip install -r" in failed[-1].name:
        step = progress.step_label(failed[-1].name)
        install = explain_install_failure(plan.requirements + plan.pre_requirements, plan.origins,
                                          failed[-1].output)
        return BuildError(f"{install.message} (image build step: {step})", log_tail=install.log_tail,
                          hint=install.hint)
    return error
