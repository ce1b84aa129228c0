"""Container images for apps: Dockerfiles rendered from templates/docker, the base and SDK images, builds."""

from builder.docker.base import bootstrap, ensure_base_image
from builder.docker.build import BuiltImage, ImageBuilder
from builder.docker.engine import connect, find_build_cli
from builder.docker.render import render_dockerfile, render_sdk_dockerfile

__all__ = ["BuiltImage", "ImageBuilder", "bootstrap", "connect", "ensure_base_image", "find_build_cli",
           "render_dockerfile", "render_sdk_dockerfile"]
