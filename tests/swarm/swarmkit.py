"""A `spaces serve --backend swarm` on the test cluster's manager, and what the swarm tests ask of it.

The platform runs inside the manager's network namespace, as it would on a real manager host: its registry
listens on the manager's address, and its gateway reaches tasks at their nodes' addresses. The tests (on the
host) reach the platform at the manager's address through the test bridge.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
from cluster import Cluster

from builder import plan as plans
from builder import releases
from builder import spec as specs
from builder.docker import ImageBuilder, connect, ensure_base_image
from builder.docker.render import BOOTSTRAP_BASE, sdk_image_for
from builder.docker.runner import build_runner_image
from spaces_harness import REPO, Platform, write_app
from spaces_runtime.config import Settings

SDK_APPS = (REPO / "examples" / "sentiment", REPO / "examples" / "data-explorer")  # one gradio, one streamlit
# every example, as on the other backends; the three runner examples are placed on w1, the GPU node, beside its
# runner (the image-classifier with its own model, the other two with the runner's built-in models)
SWARM_EXAMPLES = tuple(sorted(p.name for p in (REPO / "examples").iterdir() if (p / "README.md").is_file()))
LOCAL_WHEELS = Path("/opt/wheels")
GRADIO_TWIN = """import os
import socket
import gradio as gr

def who(_: str) -> str:
    return "{text} from " + socket.gethostname()

def secret() -> str:
    return os.environ.get("TWIN_SECRET", "(not set)")

with gr.Blocks() as demo:
    gr.Markdown("{text} served by " + socket.gethostname())
    box = gr.Textbox()
    out = gr.Textbox()
    box.submit(who, box, out, api_name="who")
    gr.Button("Secret").click(secret, None, gr.Textbox(), api_name="secret")

demo.launch()
"""
STREAMLIT_TWIN = """import socket
import streamlit as st

st.write("streamlit served by " + socket.gethostname())
"""


# set before tests/twin's first deploy: its tasks get it as a Docker secret, the app as a variable; the trailing
# newline must survive the trip
TWIN_SECRET = "twin-secret-5d1c8e\n"


def twin_readme(sdk: str, version: str) -> str:
    return f"---\ntitle: Twin\nsdk: {sdk}\nsdk_version: {version}\napp_file: app.py\nreplicas: 2\n---\n"


def gradio_twin(folder: Path, text: str) -> Path:
    """A Gradio app with 2 replicas whose page and API say which task (container hostname) answered."""
    return write_app(folder, {"README.md": twin_readme("gradio", "6.31.0"),
                              "app.py": GRADIO_TWIN.replace("{text}", text)})


def twin_apps(root: Path) -> dict[str, Path]:
    lit = write_app(root / "lit", {"README.md": twin_readme("streamlit", "1.67.0"), "app.py": STREAMLIT_TWIN})
    return {"tests/twin": gradio_twin(root / "twin", "v1"), "tests/lit": lit}


def sdk_images(settings: Settings) -> list[str]:
    """The base image and the SDK images the examples build on, as the host engine has them (built if not):
    what the manager's engine needs so that its builds start from the same images and rebuild none."""
    host = connect(os.environ)
    builder = ImageBuilder(host, settings, environ=os.environ)
    base = ensure_base_image(host, settings.base_image, lambda _line: None)
    names = [base]
    for folder in SDK_APPS:
        plan = plans.make(specs.load(folder), settings)
        as_of, _ = releases.era_date(plan, settings.ca_bundle)
        names.append(builder.sdk_image(sdk_image_for(plan, base, releases.exclude_newer(as_of)), lambda _l: None).tag)
    return names


@dataclass
class ManagerPlatform(Platform):
    netns: str = ""
    address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def command(self) -> list[str]:
        """`spaces serve --backend swarm` in the manager's network namespace, on its swarm address."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "spaces_runtime.cli", "serve",
                "--host", self.address, "--port", str(self.port), "--public-host", f"{self.address}:{self.port}",
                "--data-dir", str(self.data_dir), "--backend", "swarm", *self.extra_args]

    def start(self, timeout: float = 120) -> ManagerPlatform:
        super().start(timeout)
        return self


def runner_settings() -> dict[str, Any]:
    """The Settings fields of the swarm runner's image: the built-in models' packages included (semantic-search
    and speech-finder use them), and the torch wheel this kind of machine keeps on disk, when it has one (else the
    index's)."""
    fields: dict[str, Any] = {"base_image": BOOTSTRAP_BASE}
    if LOCAL_WHEELS.is_dir():
        fields["runner_find_links"] = LOCAL_WHEELS
    return fields


def host_runner_image() -> str:
    """The runner image as the manager would build it (builder.docker.runner, runner_settings), built on the
    host engine (or found there) so the session can load it into the GPU node: pushing its 1 GB through the
    registry is gzip on one core, three minutes of the session's setup on 2 cores, for a path every app's image
    takes too."""
    settings = Settings(backend="docker", **runner_settings())
    return build_runner_image(ImageBuilder(connect(os.environ), settings, environ=os.environ), lambda _l: None).tag


def manager_platform(cluster: Cluster, root: Path, extra_args: list[str] | None = None, *,
                     runner_image: str | None = None) -> ManagerPlatform:
    """Not started yet. Its model runner is the swarm's global service on w1, the GPU node (cluster.py), from
    ``runner_image`` when the test loaded one there, else from an image it builds and pushes itself."""
    env = {"DOCKER_HOST": cluster.manager.docker_host,
           **{f"SPACES_{name.upper()}": str(value) for name, value in runner_settings().items()}}
    if runner_image is not None:
        env["SPACES_SWARM_RUNNER_IMAGE"] = runner_image
    return ManagerPlatform(root / "data", extra_args=extra_args or [], env=env, netns=cluster.manager.netns,
                           address=cluster.manager.ip)


def tasks_of(client: docker.DockerClient, space_id: str) -> list[dict[str, Any]]:
    """The running tasks of a space's service, with the node each is on."""
    services = client.services.list(filters={"label": f"spaces-runtime.space={space_id}"})
    tasks = [t for s in services for t in s.tasks(filters={"desired-state": "running"})]
    return [t for t in tasks if t.get("Status", {}).get("State") == "running"]


def node_names(client: docker.DockerClient) -> dict[str, str]:
    return {n.id: n.attrs["Description"]["Hostname"] for n in client.nodes.list()}


@dataclass
class Load:
    """GETs of ``url`` through the gateway, one after another (``pause`` s apart), until stopped: every failure
    kept, the longest run of failed ones and the slowest answer (a request the gateway held while the app had no
    task), in seconds."""

    url: str
    timeout: float = 10.0
    pause: float = 0.0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    longest: float = 0.0
    slowest: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 30)

    def _run(self) -> None:
        failing_since: float | None = None
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                failure = self._get(client)
                now = time.monotonic()
                self.done += 1
                if failure is None:
                    self.slowest = max(self.slowest, now - sent)
                    if failing_since is not None:
                        self.longest, failing_since = max(self.longest, now - failing_since), None
                else:
                    self.failures.append(failure)
                    failing_since = now if failing_since is None else failing_since
                self._stop.wait(self.pause)
        if failing_since is not None:  # still failing at the end: count it all
            self.longest = max(self.longest, time.monotonic() - failing_since)

    def _get(self, client: httpx.Client) -> str | None:
        try:
            response = client.get(self.url)
        except httpx.HTTPError as exc:
            return repr(exc)
        return None if response.status_code == 200 else f"{response.status_code}: {response.text[:200]}"
