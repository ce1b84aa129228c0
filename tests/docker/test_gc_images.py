"""`spaces gc` on a real Docker Engine: app and SDK images a space still needs stay, the others go; build-cache
records are listed and removed one by one. Tiny images are made with `docker import` under a repository of this
test's own, and the survey is narrowed to it, so images and caches of other platforms on the engine are untouched.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from dockerkit import copy_app

from builder import plan as plans
from builder import spec as specs
from builder.docker import ImageBuilder
from builder.docker.build import CODE_LABEL, ENV_LABEL, KIND_LABEL, SDK_LABEL
from builder.docker.engine import find_build_cli
from spaces_runtime.appfiles import code_hash
from spaces_runtime.config import Settings
from spaces_runtime.housekeeping.collect import Collector
from spaces_runtime.housekeeping.images import DockerImages, _epoch
from spaces_runtime.stages import Stage
from spaces_runtime.store import Store

pytestmark = pytest.mark.docker


def tiny_tar(content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def repo(engine: docker.DockerClient) -> Iterator[str]:
    name = f"spaces-runtime-gctest-{uuid.uuid4().hex[:8]}"
    yield name
    for image in engine.images.list(name=f"{name}/*"):
        for tag in image.tags:
            engine.images.remove(tag, force=True)


def make_image(engine: docker.DockerClient, tag: str, labels: dict[str, str]) -> str:
    changes = [f"LABEL {key}={value}" for key, value in labels.items()]
    repository, version = tag.rsplit(":", 1)
    engine.api.import_image_from_data(tiny_tar(os.urandom(2048)), repository=repository, tag=version,
                                      changes=changes)
    return str(engine.images.get(tag).id)


async def test_images_a_space_needs_stay_and_the_rest_go(engine: docker.DockerClient, repo: str,
                                                   tmp_path: Path) -> None:
    app, sdk = f"{repo}/app", f"{repo}/sdk"
    make_image(engine, f"{sdk}:one", {KIND_LABEL: "sdk"})
    make_image(engine, f"{sdk}:two", {KIND_LABEL: "sdk"})
    make_image(engine, f"{app}:used", {KIND_LABEL: "app", ENV_LABEL: "e1", CODE_LABEL: "c1", SDK_LABEL: f"{sdk}:one"})
    make_image(engine, f"{app}:old", {KIND_LABEL: "app", ENV_LABEL: "e1", CODE_LABEL: "c0", SDK_LABEL: f"{sdk}:two"})
    make_image(engine, f"{app}:unlabelled", {KIND_LABEL: "app"})
    make_image(engine, f"{app}:in-container", {KIND_LABEL: "app", ENV_LABEL: "e9", CODE_LABEL: "c9"})
    container = engine.containers.create(f"{app}:in-container", command="/payload")
    settings = Settings(backend="docker", data_dir=tmp_path / "data")
    store = Store(settings.db_path)
    store.create_or_touch("me/app", Stage.BUILDING, "test")
    store.update("me/app", env_hash="e1", code_hash="c1")
    collector = Collector(settings, store, DockerImages(engine, repos=(app, sdk), build_cache=False))
    try:
        dry = (await collector.run(dry_run=True)).as_json()
        assert {row["key"] for row in dry["collect"]} == {f"{app}:old", f"{sdk}:two"}
        kept = {row["key"]: row["reason"] for row in dry["keep"] if row["kind"] in ("image", "sdk-image")}
        assert kept == {f"{app}:used": "the image of me/app",
                        f"{sdk}:one": "an app image that stays was built on it",
                        f"{app}:unlabelled": "it carries no env/code labels (built before they existed): left alone",
                        f"{app}:in-container": "a container was created from it"}
        done = await collector.run(dry_run=False)
        assert done.failures == []
        tags = {tag for image in engine.images.list(name=f"{repo}/*") for tag in image.tags}
        assert tags == {f"{app}:used", f"{sdk}:one", f"{app}:unlabelled", f"{app}:in-container"}
    finally:
        container.remove(force=True)
        store.close()


def test_build_cache_records_are_listed_and_removed_one_by_one(engine: docker.DockerClient, tmp_path: Path) -> None:
    before = {r["ID"] for r in engine.df().get("BuildCache") or []}
    (tmp_path / "blob").write_bytes(os.urandom(4096))
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY blob /blob\n")
    tag = f"spaces-runtime-gctest-{uuid.uuid4().hex[:8]}:cache"
    cli = find_build_cli()
    subprocess.run([*cli.argv, "-t", tag, str(tmp_path)], env={**os.environ, **cli.env}, check=True,
                   capture_output=True)
    try:
        items, _ = DockerImages(engine, repos=()).survey()
        ours = [i for i in items if i.kind == "build-cache" and i.key not in before]
        assert ours, "the build left no cache record the survey lists"
        assert all(not i.in_use and i.last_used > 0 for i in ours)
        images = DockerImages(engine, repos=())
        for item in ours:
            images.remove(item)
        left = {r["ID"] for r in engine.df().get("BuildCache") or []}
        assert not {i.key for i in ours} & left
    finally:
        engine.images.remove(tag, force=True)


async def test_a_built_app_image_names_what_it_was_built_from(engine: docker.DockerClient, image_builder: ImageBuilder,
                                                             settings: Settings, tmp_path: Path) -> None:
    """The labels gc reads come from the builder: a space whose record names the plan's env hash and the code
    hash keeps its image, and once the record moves on, the image goes."""
    folder = copy_app("gradio_hello", tmp_path)
    (folder / "unique.txt").write_text(uuid.uuid4().hex)  # a code hash no other test shares: a fresh app layer
    spec = specs.load(folder)
    plan = plans.make(spec, settings)
    lines: list[str] = []
    built = image_builder.build(spec, plan, lines.append)
    try:
        labels = engine.images.get(built.tag).labels
        assert labels[ENV_LABEL] == plan.env_hash and labels[CODE_LABEL] == code_hash(folder)
        assert labels[SDK_LABEL].startswith("spaces-runtime/sdk:")
        store = Store(tmp_path / "spaces.db")
        store.create_or_touch("me/hello", Stage.BUILDING, "test")
        store.update("me/hello", env_hash=plan.env_hash, code_hash=code_hash(folder))
        repo = built.tag.rsplit(":", 1)[0]
        collector = Collector(Settings(data_dir=tmp_path / "data"), store,
                              DockerImages(engine, repos=(repo,), build_cache=False))
        kept = {r["key"]: r["reason"] for r in (await collector.run(dry_run=True)).as_json()["keep"]}
        assert kept[built.tag] == "the image of me/hello"
        store.update("me/hello", code_hash="a-newer-upload")
        collect = {r["key"] for r in (await collector.run(dry_run=True)).as_json()["collect"]}
        assert built.tag in collect
        store.close()
    finally:
        engine.images.remove(built.tag, force=True)


def test_engine_times_with_nanoseconds_are_read() -> None:
    assert _epoch("2026-12-01T21:35:37.660293474Z") == pytest.approx(1796160937.660293, abs=1e-3)
    assert _epoch("") == 0.0
