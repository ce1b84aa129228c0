"""AppSpec → BuildPlan: the Python version, the resolved requirements, the environment's hash and the steps.

Pure: the same spec and settings always give the same plan. The environment hash covers what goes into the
virtualenv (Python, SDK and version, requirements, package index, the date rule of the resolution) and not the
app's code, so a code-only change reuses the environment; ``spaces_runtime.appfiles.code_hash`` fingerprints the
code separately.

Era-true resolution: an app that pins an SDK older than the platform's default (sdk_version in README.md) was
written when that SDK was new, and its unpinned requirements only ever worked with packages of that time (gradio
4.44 imports huggingface_hub's HfFolder, which 1.x removed; streamlit 1.17 imports altair.vegalite.v4). Such a
plan carries an ``EraPin``; the builder resolves as of that release (``uv pip install --exclude-newer``). The
rule, not the date, is in the hash: a release's date never changes, and the plan stays pure (no index lookup).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from builder.requirements import PACKAGES, PRE_REQUIREMENTS, REQUIREMENTS, extras, normalise, package_name
from builder.spec import AppSpec
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError
from spaces_runtime.sdk_eras import version_key

# bump when the layout of a built environment changes, so that old ones are not reused
ENV_FORMAT = "1"
SDK_SOURCE = "sdk_version in README.md"
PLATFORM_DEFAULT = "the platform's default SDK version"
HF_DEFAULT_PYTHON = "3.10"  # what Hugging Face gives a Space without python_version
ERA_SLACK_DAYS = 1  # resolve as of the SDK release's day and the next: its own companion packages land then


@dataclass(frozen=True)
class EraPin:
    """Resolve as of ``package==version``'s release, for ``reason`` (one build-log clause)."""

    package: str
    version: str
    reason: str

    @property
    def rule(self) -> str:
        """What the env hash holds: the rule, which fixes the date."""
        return f"as-of:{self.package}=={self.version}+{ERA_SLACK_DAYS}d"


@dataclass(frozen=True)
class BuildPlan:
    """What to build for one app. ``origins`` maps each requirement to where it came from, e.g.
    "requirements.txt line 2", so that a failing install can point at the line to fix."""

    sdk: str
    sdk_version: str | None  # None for static and docker
    python_version: str
    requirements: list[str]
    pre_requirements: list[str]
    env_hash: str
    needs_env: bool  # False for static apps: they install nothing (a bare interpreter serves the files)
    app_file: str
    app_port: int
    origins: dict[str, str] = field(default_factory=dict)
    index_url: str | None = None
    extra_index_url: str | None = None
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. a requirements.txt pin replaced by sdk_version
    python_origin: str = "set in README.md"  # where python_version came from, for the build log
    era: EraPin | None = None  # None: resolve as of today


def make(spec: AppSpec, settings: Settings) -> BuildPlan:
    """Decide what to build; raises BuildError for what the chosen backend cannot do."""
    _check_backend(spec, settings)
    python_version, python_origin = _python(spec, settings)
    origins = _origins(spec)
    sdk_version = _sdk_version(spec, settings)
    era = _era(spec, settings)
    requirements, notes = _pin_sdk(spec, sdk_version, origins)
    pre_requirements = list(spec.pre_requirements)
    if spec.sdk == "static" and (requirements or pre_requirements):
        # a static site runs no Python code of its own; Hugging Face ignores its requirements too
        notes.append(f"{REQUIREMENTS} is ignored: sdk static serves files and installs nothing")
        requirements, pre_requirements = [], []
    env_hash = hash_env(python_version, spec.sdk, sdk_version, pre_requirements, requirements,
                        (settings.index_url, settings.extra_index_url), resolution=era.rule if era else None)
    plan = BuildPlan(sdk=spec.sdk, sdk_version=sdk_version, python_version=python_version,
                     requirements=requirements, pre_requirements=pre_requirements, env_hash=env_hash,
                     needs_env=spec.sdk in ("gradio", "streamlit"), app_file=spec.app_file,
                     app_port=spec.app_port, origins=origins, index_url=settings.index_url,
                     extra_index_url=settings.extra_index_url, notes=notes, python_origin=python_origin, era=era)
    return replace(plan, steps=_steps(plan))


def _check_backend(spec: AppSpec, settings: Settings) -> None:
    if settings.backend != "process":
        return
    if spec.sdk == "docker":
        raise BuildError("README.md: sdk docker apps are built from their Dockerfile, which the process backend "
                         "cannot do; start the platform with `spaces serve --backend docker`",
                         hint="or change sdk to gradio or streamlit to run without Docker")
    if spec.packages:
        listed = ", ".join(spec.packages[:5])
        raise BuildError(f"{PACKAGES} line {spec.package_lines[0]}: Debian packages ({listed}) can only be "
                         "installed in a container; start the platform with `spaces serve --backend docker`",
                         hint=f"or delete {PACKAGES} if the app does not need them")


def _python(spec: AppSpec, settings: Settings) -> tuple[str, str]:
    if spec.python_version:
        return spec.python_version, "set in README.md"
    # the platform's default stays the operator's choice (SPACES_PYTHON_VERSION, 3.11: the Python of the Debian
    # release the docker backend bootstraps); the log names Hugging Face's so that a difference is visible
    return settings.python_version, (f"the platform's default (README.md sets no python_version; "
                                     f"Hugging Face's default is {HF_DEFAULT_PYTHON})")


def _era(spec: AppSpec, settings: Settings) -> EraPin | None:
    """An EraPin when README.md pins an SDK older than the platform's default and the operator allows it."""
    defaults = {"gradio": settings.default_gradio_version, "streamlit": settings.default_streamlit_version}
    if not settings.era_resolution or spec.sdk not in defaults or not spec.sdk_version:
        return None
    if version_key(spec.sdk_version) >= version_key(defaults[spec.sdk]):
        return None
    return EraPin(spec.sdk, spec.sdk_version,
                  f"sdk_version {spec.sdk_version} in README.md is older than the platform's {spec.sdk} "
                  f"{defaults[spec.sdk]}, so the app's other requirements are resolved as they were then")


def _origins(spec: AppSpec) -> dict[str, str]:
    origins = {r: f"{PRE_REQUIREMENTS} line {n}" for r, n in zip(spec.pre_requirements,
                                                                  spec.pre_requirement_lines, strict=True)}
    origins.update({r: f"{REQUIREMENTS} line {n}" for r, n in zip(spec.requirements,
                                                                 spec.requirement_lines, strict=True)})
    return origins


def _sdk_version(spec: AppSpec, settings: Settings) -> str | None:
    defaults = {"gradio": settings.default_gradio_version, "streamlit": settings.default_streamlit_version}
    if spec.sdk not in defaults:
        return None
    return spec.sdk_version or defaults[spec.sdk]


def _pin_sdk(spec: AppSpec, sdk_version: str | None,
             origins: dict[str, str]) -> tuple[list[str], list[str]]:
    """Put ``sdk==version`` first, replacing any pin of the SDK in requirements.txt (keeping its extras), as
    Hugging Face does: the README decides the SDK's version."""
    if sdk_version is None:
        return list(dict.fromkeys(spec.requirements)), []
    kept, notes, wanted = [], [], set()
    for requirement in spec.requirements:
        if package_name(requirement) == spec.sdk:
            wanted |= extras(requirement)
            notes.append(f"{origins.get(requirement, REQUIREMENTS)}: '{requirement}' is replaced by "
                         f"{spec.sdk}=={sdk_version} (set the version with sdk_version in README.md)")
        else:
            kept.append(requirement)
    pin = f"{spec.sdk}[{','.join(sorted(wanted))}]=={sdk_version}" if wanted else f"{spec.sdk}=={sdk_version}"
    origins[pin] = SDK_SOURCE if spec.sdk_version else PLATFORM_DEFAULT
    return list(dict.fromkeys([pin, *kept])), notes


def hash_env(python_version: str, sdk: str, sdk_version: str | None, pre_requirements: list[str],
             requirements: list[str], indexes: tuple[str | None, str | None] = (None, None), *,
             resolution: str | None = None) -> str:
    """sha256 of what goes into the environment; spacing, name spelling and line order do not count.
    ``resolution`` is the date rule (EraPin.rule); None, resolving as of today, keeps hashes of before."""
    payload: dict[str, object] = {
        "format": ENV_FORMAT,
        "python": python_version,
        "sdk": [sdk, sdk_version],
        "pre": sorted({normalise(r) for r in pre_requirements}),
        "requirements": sorted({normalise(r) for r in requirements}),
        "indexes": list(indexes),
    }
    if resolution is not None:
        payload["resolution"] = resolution
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _steps(plan: BuildPlan) -> list[str]:
    if not plan.needs_env:
        return [f"serve {plan.app_file} and the folder's files as a static site"]
    steps = [f"create a Python {plan.python_version} virtualenv with uv (env {plan.env_hash[:12]})"]
    if plan.era:
        steps.append(f"resolve as of {plan.era.package} {plan.era.version}'s release: {plan.era.reason}")
    if plan.pre_requirements:
        steps.append(f"install {len(plan.pre_requirements)} pre-requirement(s) from {PRE_REQUIREMENTS}")
    steps.append(f"install {describe(plan.requirements, plan.sdk)}")
    steps.append(f"start {plan.app_file} with {plan.sdk}")
    return steps


def describe(requirements: list[str], sdk: str) -> str:
    """"gradio==6.31.0 and 2 requirement(s) from requirements.txt", for logs and steps."""
    pins = [r for r in requirements if package_name(r) == sdk]
    rest = len(requirements) - len(pins)
    parts = [*pins, f"{rest} requirement(s) from {REQUIREMENTS}"] if rest else pins
    return " and ".join(parts) or "nothing"
