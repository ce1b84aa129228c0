"""`spaces serve --backend docker`: a space's own Dockerfile reads its secret at build time (BuildKit) and its
container gets it at run time, its variable as a build arg and an env var; the value stays out of the logs and
the data dir."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker
import httpx
import pytest
from polling import wait_until

from spaces_harness import Platform, write_app
from spaces_runtime.supervisor.labels import PLATFORM_LABEL, platform_id

pytestmark = pytest.mark.docker
README = "---\ntitle: Docker secrets\nsdk: docker\napp_port: 7860\n---\n"
DOCKERFILE = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG GREETING=unset
RUN --mount=type=secret,id=MY_SECRET,mode=0444,required=true \\
    mkdir -p /site && wc -c < /run/secrets/MY_SECRET | tr -d ' ' > /site/build.txt
RUN echo "$GREETING" > /site/greeting.txt
CMD ["sh", "-c", "mkdir -p /tmp/site && cp /site/* /tmp/site/ && \\
printf '%s' \\"$MY_SECRET\\" | wc -c | tr -d ' ' > /tmp/site/run.txt && echo \\"careless $MY_SECRET\\" && \\
cd /tmp/site && exec python3 -m http.server 7860"]
"""


@pytest.fixture
def platform(engine: docker.DockerClient, tmp_path: Path) -> Platform:
    server = Platform(tmp_path / "data", extra_args=["--backend", "docker"],
                      env={"SPACES_RUNNER_ENABLED": "false"}).start(timeout=120)
    try:
        yield server
    finally:
        server.stop()
        for container in engine.containers.list(all=True, filters={
                "label": f"{PLATFORM_LABEL}={platform_id(tmp_path / 'data')}"}):
            container.remove(force=True)


def test_a_docker_space_gets_its_secret_at_build_and_at_run(platform: Platform, tmp_path: Path) -> None:
    value = f"sk-docker-{uuid.uuid4().hex}"
    cli = [sys.executable, "-m", "spaces_runtime.cli"]
    subprocess.run([*cli, "secrets", "set", "admin/site", "MY_SECRET"], input=value, env=platform.cli_env(),
                   check=True, capture_output=True, text=True)
    platform.cli("variables", "set", "admin/site", "GREETING", "hi", check=True)
    folder = write_app(tmp_path / "site", {"README.md": README, "Dockerfile": DOCKERFILE + f"# {uuid.uuid4()}\n"})
    platform.cli("deploy", str(folder), "--name", "admin/site", check=True)

    def page(name: str) -> str:
        return httpx.get(f"{platform.url}/spaces/admin/site/{name}", timeout=30).text.strip()

    assert page("build.txt") == str(len(value)), "the build read the secret"
    assert page("run.txt") == str(len(value)), "the container has it in its environment"
    assert page("greeting.txt") == "hi", "variables are build args"

    def log(kind: str) -> str:
        return httpx.get(f"{platform.url}/api/spaces/admin/site/logs/{kind}?follow=0", headers=platform.auth,
                         timeout=30).text

    wait_until(lambda: "careless" in log("run"), timeout=60, what="the container's first line in the run log")
    assert "careless ***" in log("run") and value not in log("run") and value not in log("build")
    leaked = [p for p in [*platform.data_dir.rglob("*"), platform.log_path]
              if p.is_file() and not p.is_symlink() and value.encode() in p.read_bytes()]
    assert leaked == []
