"""Pure decisions for images: Dockerfiles rendered from templates/docker, image tags, the build's secret env.

Nothing here talks to the Docker Engine; ``builder.docker.build`` does the I/O around these functions
(repo2docker's render vs build split), so they are tested with golden files.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

import jinja2

from builder.plan import BuildPlan
from spaces_runtime.config import templates_dir
from spaces_runtime.errors import BuildError
from spaces_runtime.sdk_eras import image_env

SDK_REPO = "spaces-runtime/sdk"
APP_REPO = "spaces-runtime/app"
BOOTSTRAP_BASE = "spaces-runtime/base:bookworm-py3.11"
# the uv that SDK images install (pip install uv==…): pinned, so that an SDK image's content depends only on
# its Dockerfile; bump it together with the golden files
UV_VERSION = "0.13.9"
IMAGE_FORMAT = "1"  # bump when templates change in a way old images must not be reused for
SECRET_DIR = "/run/secrets"
PYTHON_HOMES = "/opt/python"  # where a Python brought from the host lives in an SDK image
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.\-]+(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")


@dataclass(frozen=True)
class BroughtPython:
    """A host interpreter's installation (``prefix``: bin/, lib/, include/) to copy into an SDK image."""

    prefix: str
    full_version: str  # "3.9.18"
    source: str  # where it was found (builder.pythons.Interpreter.source)

    @property
    def home(self) -> str:
        return f"{PYTHON_HOMES}/{self.full_version}"

    @property
    def describe(self) -> str:
        return f"Python {self.full_version}"  # not where it came from: the host's paths stay out of the image


@dataclass(frozen=True)
class SdkImage:
    """The shared image under every app of one SDK version: base, user 1000, a venv with the SDK and uv."""

    base_image: str
    sdk: str  # gradio | streamlit | static
    sdk_version: str | None
    python_version: str
    uv_version: str = UV_VERSION
    exclude_newer: str | None = None  # era-true resolution: uv's --exclude-newer (RFC 3339), see builder.plan
    brought: BroughtPython | None = None  # a Python other than the base image's, copied in from the host

    @property
    def sdk_requirement(self) -> str | None:
        return f"{self.sdk}=={self.sdk_version}" if self.sdk_version else None

    @property
    def python(self) -> str:
        """The interpreter the venv is made with."""
        if self.brought is None:
            return "python3"
        return f"{self.brought.home}/bin/python{'.'.join(self.brought.full_version.split('.')[:2])}"


@dataclass(frozen=True)
class AppImage:
    """One app's image on top of its SDK image."""

    sdk: str
    sdk_image: str  # tag or id of the SdkImage built for it
    app_file: str
    apt_packages: tuple[str, ...] = ()
    pre_requirements: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    exclude_newer: str | None = None


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "docker"),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        autoescape=False,  # Dockerfiles, not HTML
    )


def render_sdk_dockerfile(image: SdkImage) -> str:
    return _templates().get_template("sdk.Dockerfile.j2").render(
        base_image=image.base_image, sdk=image.sdk, sdk_version=image.sdk_version,
        python_version=image.python_version, uv_version=image.uv_version,
        sdk_requirement=image.sdk_requirement, exclude_newer=image.exclude_newer, python=image.python,
        python_home=image.brought.home if image.brought else None,
        python_from=image.brought.describe if image.brought else None,
        sdk_env=[f"{k}={v}" for k, v in image_env(image.sdk, image.sdk_version).items()])


def render_dockerfile(image: AppImage) -> str:
    """The app's Dockerfile for sdk gradio, streamlit or static (docker apps bring their own)."""
    if image.sdk not in ("gradio", "streamlit", "static"):
        raise BuildError(f"no Dockerfile template for sdk '{image.sdk}'; "
                         "sdk docker apps are built from their own Dockerfile")
    return _templates().get_template(f"{image.sdk}.Dockerfile.j2").render(
        sdk=image.sdk, sdk_image=image.sdk_image, app_file=image.app_file,
        apt_packages=[shlex.quote(p) for p in image.apt_packages],
        pre_requirements=bool(image.pre_requirements), requirements=bool(image.requirements),
        exclude_newer=image.exclude_newer,
        static_root=str(PurePosixPath("/home/user/app", image.app_file).parent))


def sdk_image_for(plan: BuildPlan, base_image: str, exclude_newer: str | None = None,
                  python: BroughtPython | None = None) -> SdkImage:
    """``exclude_newer``: the date an era plan resolves as of (``builder.releases.era_date``), None for today.
    ``python``: the host interpreter to copy in when the base image's Python is not the plan's."""
    if plan.sdk not in ("gradio", "streamlit", "static"):
        raise BuildError(f"sdk '{plan.sdk}' has no shared SDK image")
    return SdkImage(base_image=base_image, sdk=plan.sdk, sdk_version=plan.sdk_version,
                    python_version=plan.python_version, exclude_newer=exclude_newer, brought=python)


def app_image_for(plan: BuildPlan, packages: list[str], sdk_image: str,
                  package_lines: list[int] | None = None, exclude_newer: str | None = None) -> AppImage:
    check_packages(packages, package_lines or [])
    return AppImage(sdk=plan.sdk, sdk_image=sdk_image, app_file=plan.app_file,
                    apt_packages=tuple(packages), pre_requirements=tuple(plan.pre_requirements),
                    requirements=tuple(plan.requirements), exclude_newer=exclude_newer)


def check_packages(packages: list[str], lines: list[int]) -> None:
    """packages.txt lines go into a shell command: only Debian package names (optionally =version) pass."""
    for index, package in enumerate(packages):
        if not _DEBIAN_PACKAGE.match(package):
            line = f" line {lines[index]}" if index < len(lines) else ""
            raise BuildError(f"packages.txt{line}: '{package}' is not a Debian package name; write one name "
                             "per line, like ffmpeg or libgl1 (optionally name=version)")


def requirement_files(image: AppImage) -> dict[str, str]:
    """The files the app Dockerfile bind-mounts from the build context's .spaces/ folder."""
    return {
        "pre-requirements.txt": "".join(f"{r}\n" for r in image.pre_requirements),
        "requirements.txt": "".join(f"{r}\n" for r in image.requirements),
    }


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in (IMAGE_FORMAT, *parts):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part.encode())
    return h.hexdigest()


def sdk_tag(image: SdkImage, base_image_id: str) -> str:
    """Same Dockerfile on the same base image → same tag, found before building."""
    version = image.sdk_version or "none"
    key = digest(render_sdk_dockerfile(image), base_image_id)[:12]
    return f"{SDK_REPO}:{image.sdk}-{version}-py{image.python_version}-{key}"


def app_tag(env_hash: str, sdk_image_id: str, packages: tuple[str, ...], dockerfile: str,
            code_hash: str) -> str:
    """``{env}-{code}``: the env part covers what the dependency layers hold (the plan's env hash, the SDK
    image, Debian packages); the code part covers the code and the rendered Dockerfile (app_file is in it)."""
    env = digest(env_hash, sdk_image_id, *packages)[:16]
    code = digest(code_hash, dockerfile)[:16]
    return f"{APP_REPO}:{env}-{code}"


def docker_app_tag(code_hash: str, app_port: int) -> str:
    """sdk docker: the app's own Dockerfile is part of its code, so the code hash is the whole key."""
    return f"{APP_REPO}:docker-{digest(code_hash, str(app_port))[:24]}"


def build_env(ca_bundle: bool, index_url: str | None, extra_index_url: str | None) -> str:
    """A shell file the Dockerfiles source from a BuildKit secret: pip's and uv's index and CA settings. As a
    secret it never lands in a layer or in ``docker history`` (index URLs can carry tokens)."""
    lines = []
    if ca_bundle:
        ca = f"{SECRET_DIR}/ca_bundle"
        lines += [f"SSL_CERT_FILE={ca}", f"PIP_CERT={ca}", f"REQUESTS_CA_BUNDLE={ca}"]
    if index_url:
        lines += [f"UV_INDEX_URL={shlex.quote(index_url)}", f"PIP_INDEX_URL={shlex.quote(index_url)}"]
    if extra_index_url:
        lines += [f"UV_EXTRA_INDEX_URL={shlex.quote(extra_index_url)}",
                  f"PIP_EXTRA_INDEX_URL={shlex.quote(extra_index_url)}"]
    return "".join(f"{line}\n" for line in lines) or ": nothing to set\n"
