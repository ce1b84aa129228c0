"""AppSpec → BuildPlan: the Python version, the resolved requirements, the environment's hash and the steps.

Pure: the same spec and settings always give the same plan. The environment hash covers what goes into the
virtualenv (Python, SDK and version, requirements, package index) and not the app's code, so a code-only change
reuses the environment; ``spaces_runtime.appfiles.code_hash`` fingerprints the code separately.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from builder.requirements import PACKAGES, PRE_REQUIREMENTS, REQUIREMENTS, extras, normalise, package_name
from builder.spec import AppSpec
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError

# bump when the layout of a built environment changes, so that old ones are not reused
ENV_FORMAT = "1"
SDK_SOURCE = "sdk_version in README.md"
PLATFORM_DEFAULT = "the platform's default SDK version"


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


def make(spec: AppSpec, settings: Settings) -> BuildPlan:
    """Decide what to build; raises BuildError for what the chosen backend cannot do."""
    _check_backend(spec, settings)
    python_version = spec.python_version or settings.python_version
    origins = _origins(spec)
    sdk_version = _sdk_version(spec, settings)
    requirements, notes = _pin_sdk(spec, sdk_version, origins)
    pre_requirements = list(spec.pre_requirements)
    if spec.sdk == "static" and (requirements or pre_requirements):
        # a static site runs no Python code of its own; Hugging Face ignores its requirements too
        notes.append(f"{REQUIREMENTS} is ignored: sdk static serves files and installs nothing")
        requirements, pre_requirements = [], []
    env_hash = hash_env(python_version, spec.sdk, sdk_version, pre_requirements, requirements,
                        (settings.index_url, settings.extra_index_url))
    plan = BuildPlan(sdk=spec.sdk, sdk_version=sdk_version, python_version=python_version,
                     requirements=requirements, pre_requirements=pre_requirements, env_hash=env_hash,
                     needs_env=spec.sdk in ("gradio", "streamlit"), app_file=spec.app_file,
                     app_port=spec.app_port, origins=origins, index_url=settings.index_url,
                     extra_index_url=settings.extra_index_url, notes=notes)
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
             requirements: list[str], indexes: tuple[str | None, str | None] = (None, None)) -> str:
    """sha256 of what goes into the environment; spacing, name spelling and line order do not count."""
    payload = {
        "format": ENV_FORMAT,
        "python": python_version,
        "sdk": [sdk, sdk_version],
        "pre": sorted({normalise(r) for r in pre_requirements}),
        "requirements": sorted({normalise(r) for r in requirements}),
        "indexes": list(indexes),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _steps(plan: BuildPlan) -> list[str]:
    if not plan.needs_env:
        return [f"serve {plan.app_file} and the folder's files as a static site"]
    steps = [f"create a Python {plan.python_version} virtualenv with uv (env {plan.env_hash[:12]})"]
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
