"""Images as a user meets them: `spaces build` output that plain `docker run` serves, thin code-only rebuilds,
no build secret left behind, build failures that name the step."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

import docker
import pytest
from dockerkit import build, copy_app
from gradio_client import Client
from polling import wait_http

from builder.docker import BuiltImage, ImageBuilder
from builder.docker.engine import layers
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError

pytestmark = pytest.mark.docker


def test_docker_run_of_a_built_image_serves_the_app_alone(engine: docker.DockerClient,
                                                           gradio_image: BuiltImage) -> None:
    container = engine.containers.run(gradio_image.tag, detach=True, ports={"7860/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["7860/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}/"
        wait_http(url)
        assert Client(url, verbose=False).predict("Ada", api_name="/greet").startswith("Hello, Ada!")
    finally:
        container.remove(force=True)


def test_code_only_rebuild_reuses_the_dependency_layers(engine: docker.DockerClient,
                                                        image_builder: ImageBuilder, settings: Settings,
                                                        gradio_image: BuiltImage, tmp_path: Path) -> None:
    folder = copy_app("gradio_hello", tmp_path)
    app = folder / "app.py"
    # unique per run, so that this code was never built before
    app.write_text(app.read_text().replace("Hello,", "Howdy,") + f"# {uuid.uuid4()}\n")
    lines: list[str] = []
    changed = build(image_builder, settings, folder, lines)

    assert changed.tag != gradio_image.tag and not changed.reused
    before, after = layers(engine, gradio_image.tag), layers(engine, changed.tag)
    # base, SDK and requirements layers are the same objects in the engine; only the code layers differ
    shared = next(i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b)
    assert len(after) - shared <= 2, "more than the code layers were rebuilt"
    assert shared >= len(before) - 2 and len(before) == len(after)
    assert any("uv pip install -r /tmp/requirements.txt" in line for line in lines)
    assert any(line.endswith("CACHED") for line in lines), "dependency steps were not taken from the cache"


def test_finding_an_image_before_building_it(image_builder: ImageBuilder, settings: Settings,
                                             gradio_image: BuiltImage, tmp_path: Path) -> None:
    lines: list[str] = []
    again = build(image_builder, settings, copy_app("gradio_hello", tmp_path), lines)
    assert again.reused and again.id == gradio_image.id
    assert not any(line.startswith("#") for line in lines), "BuildKit ran although the image existed"


def _image_files(engine: docker.DockerClient, tag: str) -> bytes:
    """Every byte of every layer of the image, as `docker save` exports it."""
    blob = b"".join(engine.images.get(tag).save())
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(blob)) as saved:
        for member in saved.getmembers():
            if member.isfile():
                extracted = saved.extractfile(member)
                assert extracted is not None
                out.write(extracted.read())
    return out.getvalue()


def test_ca_bundle_reaches_the_build_but_not_the_image(engine: docker.DockerClient, settings: Settings,
                                                       gradio_image: BuiltImage, tmp_path: Path) -> None:
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not host_bundle.is_file():
        pytest.fail("this test needs the host CA bundle at /etc/ssl/certs/ca-certificates.crt")
    marker = f"# spaces-runtime test marker {uuid.uuid4()}"
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(host_bundle.read_text() + f"\n{marker}\n")
    marked = settings.model_copy(update={"ca_bundle": bundle})
    builder = ImageBuilder(engine, marked, environ={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    folder = copy_app("gradio_hello", tmp_path)
    # a requirement nobody built before: its install must run now, through the proxy, with the bundle
    (folder / "requirements.txt").write_text(f"tabulate>=0.9.0,!=0.0.{uuid.uuid4().int % 10**9}\n")
    lines: list[str] = []
    image = build(builder, marked, folder, lines)

    assert any("Installed" in line or "Checked" in line for line in lines)
    content = _image_files(engine, image.tag)
    assert marker.encode() not in content
    history = " ".join(str(h) for h in engine.images.get(image.tag).history())
    assert "ca_bundle" not in history.replace("id=ca_bundle", "") and marker not in history


def test_a_failing_requirement_names_the_line_and_the_step(image_builder: ImageBuilder, settings: Settings,
                                                           tmp_path: Path) -> None:
    folder = copy_app("gradio_hello", tmp_path)
    (folder / "requirements.txt").write_text("tabulate==0.9.0\nno-such-package-spaces-runtime==9.9.9\n")
    with pytest.raises(BuildError) as caught:
        build(image_builder, settings, folder)
    message = str(caught.value)
    assert "requirements.txt line 2" in message and "no-such-package-spaces-runtime" in message
    assert "RUN uv pip install -r /tmp/requirements.txt" in message
    assert caught.value.log_tail


def test_packages_txt_installs_debian_packages(engine: docker.DockerClient, image_builder: ImageBuilder,
                                               settings: Settings, tmp_path: Path) -> None:
    folder = copy_app("gradio_hello", tmp_path)
    (folder / "packages.txt").write_text("# a small Debian package\ntree\n")
    image = build(image_builder, settings, folder)
    output = engine.containers.run(image.tag, ["tree", "--version"], remove=True, user="1000:1000")
    assert b"tree v" in output
