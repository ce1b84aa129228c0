"""A space's own Dockerfile gets its secrets as BuildKit secrets (`RUN --mount=type=secret,id=KEY`, as Hugging
Face documents) and its variables as build args; no layer, history entry or build error holds a secret."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import uuid
from pathlib import Path

import docker
import pytest
from dockerkit import build

from builder.docker import ImageBuilder
from builder.docker.build import SpaceInputs
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError

pytestmark = pytest.mark.docker
README = "---\ntitle: Built with secrets\nsdk: docker\napp_port: 7860\n---\n"
DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG GREETING=unset
RUN --mount=type=secret,id=MY_SECRET,mode=0444,required=true \\
    wc -c < /run/secrets/MY_SECRET > /secret-length && echo "the build read $(cat /run/secrets/MY_SECRET)"
RUN echo "$GREETING" > /greeting
CMD ["python3", "-m", "http.server", "7860"]
"""
FAILING = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
RUN --mount=type=secret,id=MY_SECRET cat /run/secrets/MY_SECRET; echo; exit 3
"""


def app(folder: Path, dockerfile: str) -> Path:
    folder.mkdir()
    (folder / "README.md").write_text(README)
    (folder / "Dockerfile").write_text(dockerfile + f"# {uuid.uuid4()}\n")  # never an image built before
    return folder


def image_bytes(engine: docker.DockerClient, tag: str) -> bytes:
    """Every byte of every layer and of the config, as `docker save` exports them (decompressed)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(b"".join(engine.images.get(tag).save()))) as saved:
        for member in saved.getmembers():
            extracted = saved.extractfile(member) if member.isfile() else None
            if extracted is not None:
                data = extracted.read()
                out.write(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    return out.getvalue()


def test_secrets_reach_the_build_and_stay_out_of_the_image(engine: docker.DockerClient, settings: Settings,
                                                            tmp_path: Path) -> None:
    value = f"sk-build-{uuid.uuid4().hex}"
    work = tmp_path / "work"
    work.mkdir()
    builder = ImageBuilder(engine, settings, environ=os.environ, work_dir=work,
                           inputs_of=lambda _: SpaceInputs({"GREETING": "from a variable"}, {"MY_SECRET": value}))
    lines: list[str] = []
    image = build(builder, settings, app(tmp_path / "app", DOCKERFILE), lines)

    def run(*argv: str) -> str:
        return bytes(engine.containers.run(image.tag, list(argv), remove=True)).decode().strip()

    assert run("cat", "/secret-length") == str(len(value)), "the build read the secret"
    assert run("cat", "/greeting") == "from a variable", "variables are build args"
    assert value.encode() not in image_bytes(engine, image.tag)
    history = " ".join(str(h) for h in engine.images.get(image.tag).history())
    assert value not in history and value not in str(engine.images.get(image.tag).attrs)
    assert not list(work.glob("spaces-secrets-*")), "the secrets' files went with the build"


def test_a_failing_build_does_not_repeat_the_secret(engine: docker.DockerClient, settings: Settings,
                                                    tmp_path: Path) -> None:
    value = f"sk-fail-{uuid.uuid4().hex}"
    builder = ImageBuilder(engine, settings, environ=os.environ, work_dir=tmp_path,
                           inputs_of=lambda _: SpaceInputs(secrets={"MY_SECRET": value}))
    with pytest.raises(BuildError) as caught:
        build(builder, settings, app(tmp_path / "app", FAILING), [])
    assert "***" in caught.value.log_tail, "the step's output is in the error, its secret masked"
    assert value not in str(caught.value) and value not in caught.value.log_tail
