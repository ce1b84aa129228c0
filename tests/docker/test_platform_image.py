"""The platform's own image (the top-level Dockerfile), run as the README says: `spaces serve --backend docker` in
a container with `--network host`, the host's Docker socket and a data volume at /data.

It is built once per run from the air-gapped base image the other docker tests use. An example is deployed
from the host with the token read from the volume, called through the gateway, and taken over, same container,
when the platform container is killed and started again, and when a new container replaces it on the volume.
A second platform container, the image plus torch (the README's recipe for the model runner), runs on the same
engine: its apps reach the runner and the appkit through paths the platform mounts from the HOST's view of its
volume, and the first platform's app is left alone.
Beyond the README's commands the test adds only a free port (SPACES_PORT), its own names and a label; it removes
every container, volume and image it made (BuildKit's build cache stays, as after any build).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
import pytest
from gradio_client import Client
from polling import wait_until

from builder.docker import ImageBuilder, ensure_base_image, find_build_cli
from builder.docker.build import host_ca_bundle
from example_checks import check_sentiment
from spaces_harness import EXAMPLES, free_port, gradio_readme, write_app
from spaces_runtime.config import Settings
from spaces_runtime.supervisor.labels import SPACE_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:8]
TEST_LABEL = "spaces-runtime.test"  # value RUN_ID: on every image and platform container this module makes
OWNER = f"image-{RUN_ID}"  # no other test deploys under this owner: these app containers and volumes are ours
APP_TAGS: set[str] = set()  # app images the deploys here named in their build logs, failed ones included
CA_INSIDE = "/etc/spaces/ca.crt"
WHEELS = Path("/opt/wheels")  # where this kind of machine keeps torch's CPU wheel (scripts/setup.sh)
RUNNER_HEREDOC = "-f - /opt/wheels <<'EOF'\n"

RUNNER_APP = """\
import gradio as gr
import spaces
from spaces_runtime.client import Runner


@spaces.GPU
def whoami(_: str) -> str:
    return Runner().status()["app"]


gr.Interface(whoami, "text", "text", api_name="whoami").launch()
"""


def runner_dockerfile() -> str:
    """The README's recipe for the model runner, as written there: the platform image plus torch."""
    readme = (REPO / "README.md").read_text()
    assert RUNNER_HEREDOC in readme, "README.md's platform-image section no longer builds the runner image"
    return readme.split(RUNNER_HEREDOC, 1)[1].split("\nEOF\n", 1)[0] + "\n"


def docker_build(tag: str, context: Path, *args: str, dockerfile: str | None = None) -> None:
    """A BuildKit build as the README's `docker build`, with the CA bundle as a secret when the host has one."""
    cli = find_build_cli()
    ca = host_ca_bundle(Settings())
    secret = ["--secret", f"id=ca_bundle,src={ca}"] if ca else []
    argv = [*cli.argv, "--progress=plain", *secret, "--label", f"{TEST_LABEL}={RUN_ID}", "-t", tag, *args,
            "-f", "-" if dockerfile is not None else str(REPO / "Dockerfile"), str(context)]
    done = subprocess.run(argv, input=dockerfile, env={**os.environ, **cli.env}, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, f"docker build {tag} failed:\n{(done.stdout + done.stderr)[-4000:]}"


def docker_cli(*args: str, timeout: float = 120) -> str:
    done = subprocess.run([find_build_cli().docker, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout.strip()


def engine_socket() -> str:
    """The host's socket, as the platform container gets it (-v SOCKET:/var/run/docker.sock)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert host.startswith("unix://"), f"the platform image needs a local engine socket, not DOCKER_HOST={host}"
    return host[len("unix://"):]


@dataclass
class PlatformContainer:
    """`docker run -d --network host -v SOCKET:/var/run/docker.sock -v VOLUME:/data IMAGE` on a free port."""

    engine: docker.DockerClient
    image: str
    name: str = field(default_factory=lambda: f"spaces-test-{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def volume(self) -> str:
        return f"{self.name}-data"

    def run(self) -> None:
        ca = host_ca_bundle(Settings())
        trust = ["-v", f"{ca}:{CA_INSIDE}:ro", "-e", f"SPACES_CA_BUNDLE={CA_INSIDE}"] if ca else []
        docker_cli("run", "-d", "--name", self.name, "--label", f"{TEST_LABEL}={RUN_ID}", "--network", "host",
                   "-v", f"{engine_socket()}:/var/run/docker.sock", "-v", f"{self.volume}:/data",
                   *trust, "-e", f"SPACES_PORT={self.port}", self.image)
        self.wait_up()

    def wait_up(self, timeout: float = 120) -> None:
        def answers() -> bool:
            container = self.engine.containers.get(self.name)
            assert container.status in ("created", "running"), f"platform exited:\n{self.logs()}"
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200

        wait_until(answers, timeout, f"{self.name} to answer /api/health", interval=0.3,
                   ignoring=(httpx.TransportError,))

    def logs(self) -> str:
        return self.engine.containers.get(self.name).logs(tail=60).decode(errors="replace")

    def token(self) -> str:
        return docker_cli("exec", self.name, "cat", "/data/token")  # the README's way to read it

    def deploy(self, folder: Path, space_id: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SPACES_SERVER": self.url, "SPACES_TOKEN": self.token()}
        done = subprocess.run([sys.executable, "-m", "spaces_runtime.cli", "deploy", str(folder), "--name",
                               space_id], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        APP_TAGS.update(re.findall(r"spaces-runtime/app:[0-9a-f-]+", done.stdout + done.stderr))
        return done

    def stage(self, space_id: str) -> str | None:
        return httpx.get(f"{self.url}/api/spaces/{space_id}", timeout=10).json().get("stage")

    def app_containers(self, space_id: str) -> list[str]:
        return sorted(c.id for c in self.engine.containers.list(filters={"label": f"{SPACE_LABEL}={space_id}"}))


def ours(labels: dict[str, str] | None) -> bool:
    return (labels or {}).get(SPACE_LABEL, "").startswith(f"{OWNER}/")


def remove_everything(engine: docker.DockerClient, images_before: set[str]) -> None:
    """The platform containers with their volumes, then the apps they started with theirs (in this order: a
    platform still up would start a removed app again), then every image made here."""
    app_images = {image.id for image in engine.images.list() if set(image.tags) & APP_TAGS}
    for kind_of_ours in (lambda c: c.labels.get(TEST_LABEL) == RUN_ID, lambda c: ours(c.labels)):
        for container in [c for c in engine.containers.list(all=True) if kind_of_ours(c)]:
            app_images.add(container.attrs["Image"])
            volumes = [m["Name"] for m in container.attrs.get("Mounts") or [] if m.get("Type") == "volume"]
            container.remove(force=True)
            for name in volumes:
                if name.startswith("spaces-test-"):
                    engine.volumes.get(name).remove(force=True)
    for volume in engine.volumes.list(filters={"label": SPACE_LABEL}):
        if ours(volume.attrs.get("Labels")):
            volume.remove(force=True)
    made = {image.id: image for image in engine.images.list() if image.id not in images_before}
    app_layers = [made[i].attrs["RootFS"]["Layers"] for i in app_images if i in made]
    for image in sorted(made.values(), key=lambda i: -len(i.attrs["RootFS"]["Layers"])):  # children first
        layers = image.attrs["RootFS"]["Layers"]
        # the SDK image our app was built on, when it was built here (the base image is the suite's: it stays)
        under_ours = image.labels.get("spaces-runtime.kind") == "sdk" and any(
            app[:len(layers)] == layers for app in app_layers)
        if image.labels.get(TEST_LABEL) == RUN_ID or image.id in app_images or under_ours:
            engine.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def cleanup(engine: docker.DockerClient) -> Iterator[None]:
    before = {image.id for image in engine.images.list()}
    yield
    remove_everything(engine, before)


@pytest.fixture(scope="module")
def platform_image(engine: docker.DockerClient, image_builder: ImageBuilder, settings: Settings,
                   cleanup: None) -> str:
    """`docker build --build-arg BASE=<the bootstrapped base> --secret id=ca_bundle,... .`, once."""
    base = ensure_base_image(engine, settings.base_image, lambda line: None, work_dir=image_builder.work_dir)
    tag = f"spaces-runtime-test/platform:{RUN_ID}"
    docker_build(tag, REPO, "--build-arg", f"BASE={base}")
    return tag


@pytest.fixture(scope="module")
def platform(engine: docker.DockerClient, platform_image: str) -> PlatformContainer:
    server = PlatformContainer(engine, platform_image)
    server.run()
    return server


@pytest.fixture(scope="module")
def sentiment(platform: PlatformContainer) -> str:
    space_id = f"{OWNER}/sentiment"
    deployed = platform.deploy(EXAMPLES / "sentiment", space_id)
    assert deployed.returncode == 0, f"{deployed.stdout[-3000:]}\n{deployed.stderr[-3000:]}\n{platform.logs()}"
    assert "RUNNING" in deployed.stdout
    return space_id


def app_url(platform: PlatformContainer, space_id: str) -> str:
    return f"{platform.url}/spaces/{space_id}/"


def test_the_image_deploys_an_example_that_answers_through_the_gateway(platform: PlatformContainer,
                                                                       sentiment: str) -> None:
    space = httpx.get(f"{platform.url}/api/spaces/{sentiment}", timeout=10).json()
    assert space["stage"] == "RUNNING"
    assert space["runtime"]["backend"] == "docker"
    assert len(platform.app_containers(sentiment)) == 1  # an app container on the host's engine
    check_sentiment(app_url(platform, sentiment))
    refused = httpx.put(f"{platform.url}/api/spaces/{OWNER}/other", content=b"", timeout=10)
    assert refused.status_code == 401  # listening beyond loopback: writes need the token from the volume


def test_a_killed_or_replaced_platform_container_adopts_the_running_app(platform: PlatformContainer,
                                                                       sentiment: str) -> None:
    before = platform.app_containers(sentiment)
    docker_cli("kill", platform.name)  # a crash
    docker_cli("start", platform.name)
    platform.wait_up()
    wait_until(lambda: platform.stage(sentiment) == "RUNNING", 120, f"{sentiment} RUNNING again", interval=0.3)
    assert platform.app_containers(sentiment) == before  # taken over, not started again
    check_sentiment(app_url(platform, sentiment))
    docker_cli("rm", "-f", platform.name)  # an upgrade: a new container of the image on the same volume
    platform.run()
    wait_until(lambda: platform.stage(sentiment) == "RUNNING", 120, f"{sentiment} RUNNING again", interval=0.3)
    assert platform.app_containers(sentiment) == before
    check_sentiment(app_url(platform, sentiment))


def test_with_torch_added_apps_reach_the_model_runner_and_other_platforms_apps_are_left_alone(
        engine: docker.DockerClient, platform_image: str, platform: PlatformContainer, sentiment: str,
        tmp_path: Path) -> None:
    """The runner's socket and the appkit live on the platform's volume; the engine mounts them from the host's
    view of it. A second platform keeping its data at /data too is a different platform."""
    tag = f"{platform_image}-runner"
    context = WHEELS if WHEELS.is_dir() else tmp_path / "no-wheels"  # without it, torch comes from the index
    context.mkdir(exist_ok=True)
    docker_build(tag, context, "--build-arg", f"PLATFORM={platform_image}", dockerfile=runner_dockerfile())
    second = PlatformContainer(engine, tag)
    second.run()
    first_app = platform.app_containers(sentiment)
    folder = write_app(tmp_path / "whoami", {"README.md": gradio_readme("Who am I"), "app.py": RUNNER_APP})
    space_id = f"{OWNER}/whoami"
    deployed = second.deploy(folder, space_id)
    assert deployed.returncode == 0, f"{deployed.stdout[-3000:]}\n{deployed.stderr[-3000:]}\n{second.logs()}"
    # the app imported the `spaces` shim and the client from the appkit, and the runner knows who calls
    answer = Client(app_url(second, space_id), verbose=False).predict("?", api_name="/whoami")
    assert answer == space_id
    assert platform.app_containers(sentiment) == first_app  # the second platform took nothing over
    check_sentiment(app_url(platform, sentiment))
