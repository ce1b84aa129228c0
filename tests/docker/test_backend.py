"""The Docker backend as the supervisor drives it: apps answer, containers are hardened, OOM is reported,
and a restarted platform adopts its containers without duplicates."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import docker
import httpx
import pytest
import websockets
from dockerkit import APPS, build, launch_spec, wait_ready
from gradio_client import Client
from polling import wait_until_async

from builder.docker import BuiltImage, ImageBuilder
from spaces_runtime.config import Settings
from spaces_runtime.supervisor.backend import ExitInfo, Instance
from spaces_runtime.supervisor.docker import DockerBackend
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, SPACE_LABEL
from spaces_runtime.supervisor.tiers import Tier

pytestmark = pytest.mark.docker


async def wait_exit(backend: DockerBackend, instance: Instance, timeout_s: float = 60) -> ExitInfo:
    return await wait_until_async(lambda: backend.exited(instance), timeout_s, f"{instance.space_id} to exit",
                                  interval=0.5)


async def test_gradio_app_answers_gradio_client(backend: DockerBackend, gradio_image: BuiltImage) -> None:
    logs: list[str] = []
    instance = await backend.launch(launch_spec("alice/hello", gradio_image, "gradio"), logs.append)
    await wait_ready(instance)
    client = await asyncio.to_thread(Client, instance.upstream + "/", verbose=False)
    answer = await asyncio.to_thread(client.predict, "Bob", api_name="/greet")
    assert answer.startswith("Hello, Bob!")
    assert any("Running on local URL" in line for line in logs), "the engine's logs did not reach the sink"
    assert await backend.exited(instance) is None
    await backend.stop(instance, grace_s=5)
    gone = await backend.exited(instance)
    assert gone is not None and "gone" in gone.reason


async def test_streamlit_app_answers_health_and_websocket(backend: DockerBackend,
                                                          streamlit_image: BuiltImage) -> None:
    spec = launch_spec("alice/stream", streamlit_image, "streamlit", base_path="/spaces/alice/stream")
    instance = await backend.launch(spec, lambda _line: None)
    await wait_ready(instance, "/spaces/alice/stream/_stcore/health", expect="ok")
    ws_url = instance.upstream.replace("http://", "ws://") + "/spaces/alice/stream/_stcore/stream"
    async with websockets.connect(ws_url, subprotocols=["streamlit"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "streamlit"
    await backend.stop(instance, grace_s=5)


async def test_container_runs_hardened_with_tier_limits(engine: docker.DockerClient, backend: DockerBackend,
                                                        gradio_image: BuiltImage) -> None:
    instance = await backend.launch(launch_spec("alice/locked", gradio_image, "gradio"), lambda _l: None)
    container = engine.containers.get(instance.backend_ref)
    host = container.attrs["HostConfig"]
    limits = backend.limits("cpu-basic")
    assert container.attrs["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] == limits.memory_bytes > 0 and host["NanoCpus"] == limits.nano_cpus > 0
    assert host["PidsLimit"] == limits.pids and "/tmp" in host["Tmpfs"]
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    # /data: the space's own disk (a quota), mounted on the host and bound in; the engine's socket: never
    assert backend.data is not None and mounts["/data"]["Source"] == str(backend.data.folder("alice/locked"))
    assert mounts["/data"]["Type"] == "bind" and os.path.ismount(mounts["/data"]["Source"])
    assert "/var/run/docker.sock" not in mounts
    assert container.exec_run("id -u").output.strip() == b"1000"
    assert container.exec_run("touch /etc/x").exit_code != 0, "the root filesystem is writable"
    assert container.exec_run("touch /data/x /tmp/x").exit_code == 0
    assert container.exec_run("cat /proc/self/status").output.count(b"CapEff:\t0000000000000000") == 1
    # its own folder is writable, as on HF (Gradio writes .gradio/ there), with its code in it; the image's
    # Python stays read-only, so nothing planted there runs at the next start
    assert container.exec_run("mkdir /home/user/app/.gradio").exit_code == 0
    assert b"greet" in container.exec_run("cat /home/user/app/app.py").output
    planted = container.exec_run(["sh", "-c", 'touch "$(python -c "import site; print(site.getsitepackages()[0])")'
                                              '/evil.pth"'])
    assert planted.exit_code != 0, planted.output
    folder = mounts["/home/user/app"]
    assert folder["Type"] == "volume" and folder["RW"] is True
    await backend.stop(instance, grace_s=5)
    assert not engine.volumes.list(filters={"name": folder["Name"]}), "the app folder's volume outlived its app"
    assert not os.path.ismount(mounts["/data"]["Source"]), "the /data disk stayed mounted after its app stopped"


async def test_memory_hog_ends_with_out_of_memory(engine: docker.DockerClient, settings: Settings,
                                                  image_builder: ImageBuilder) -> None:
    hog = await asyncio.to_thread(build, image_builder, settings, APPS / "memory_hog")
    small = DockerBackend(settings, engine, tiers={"cpu-basic": Tier(cpus=1, memory_mb=256)})
    logs: list[str] = []
    instance = await small.launch(launch_spec("alice/hog", hog, "gradio"), logs.append)
    try:
        info = await wait_exit(small, instance)
        assert info.oom and info.reason == "out of memory (limit 256m)"
        assert any("holding" in line for line in logs)
    finally:
        await small.stop(instance, grace_s=1)


async def test_restarted_platform_adopts_its_containers_without_duplicates(
        engine: docker.DockerClient, backend: DockerBackend, settings: Settings,
        gradio_image: BuiltImage) -> None:
    first = await backend.launch(launch_spec("alice/one", gradio_image, "gradio"), lambda _l: None)
    # a crash mid-redeploy leaves two containers for one space, and a dead one for another
    older = await backend.launch(launch_spec("alice/two", gradio_image, "gradio"), lambda _l: None)
    newer = await backend.launch(launch_spec("alice/two", gradio_image, "gradio"), lambda _l: None)
    dead = await backend.launch(launch_spec("alice/three", gradio_image, "gradio"), lambda _l: None)
    engine.containers.get(dead.backend_ref).kill()

    restarted = DockerBackend(settings, engine)  # what `spaces serve` builds after a restart
    adopted = {i.space_id: i for i in await restarted.adopt()}

    assert set(adopted) == {"alice/one", "alice/two"}
    assert adopted["alice/one"].backend_ref == first.backend_ref
    assert adopted["alice/two"].backend_ref == newer.backend_ref
    assert adopted["alice/one"].upstream == first.upstream
    left = engine.containers.list(all=True, filters={"label": SPACE_LABEL})
    ids = {c.id for c in left}
    assert older.backend_ref not in ids and dead.backend_ref not in ids
    assert len(await restarted.adopt()) == 2, "adopting twice must not duplicate"
    # the adopted apps' /data disks stay mounted (the apps write on them); the dead one's is unmounted
    assert restarted.data is not None
    assert os.path.ismount(restarted.data.folder("alice/one")) and os.path.ismount(restarted.data.folder("alice/two"))
    assert not os.path.ismount(restarted.data.folder("alice/three"))
    await wait_ready(adopted["alice/one"])
    assert httpx.get(adopted["alice/one"].upstream + "/", timeout=5).status_code == 200


async def test_data_of_a_volume_from_before_the_disks_moves_onto_the_spaces_disk(
        engine: docker.DockerClient, backend: DockerBackend, gradio_image: BuiltImage) -> None:
    """A platform upgraded from named volumes: the space's /data is still there, now on a disk with a quota."""
    assert backend.data is not None
    volume = engine.volumes.create(backend.volume_name("alice/kept"), labels={PLATFORM_LABEL: backend.platform})
    Path(volume.attrs["Mountpoint"], "notes.txt").write_text("written before the upgrade")
    instance = await backend.launch(launch_spec("alice/kept", gradio_image, "gradio"), lambda _l: None)
    container = engine.containers.get(instance.backend_ref)
    assert container.exec_run("cat /data/notes.txt").output == b"written before the upgrade"
    quota = container.exec_run("df -m --output=size /data").output.split()[-1]
    assert int(quota) <= backend.settings.sandbox_data_quota_mb
    await backend.stop(instance, grace_s=5)
    backend.remove_volume("alice/kept")  # a delete: the disk and the volume both go
    assert not backend.data.disks.image_of(backend.data.folder("alice/kept")).exists()
    assert not engine.volumes.list(filters={"name": volume.name})
