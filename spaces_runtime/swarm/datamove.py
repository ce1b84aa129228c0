"""Copying a space's /data volume from one swarm node to another, with two one-shot swarm jobs.

The Engine API of the manager reaches only its own volumes, so the copy runs where the volumes are: a receiver
job pinned to the new node listens on a port published in host mode (the same way app tasks are reached), and a
sender job pinned to the old node streams ``tar`` of the volume to it. The receiver accepts only a stream that
starts with a one-time token (others on the nodes' network cannot write into the volume), empties the volume,
and extracts. Both run the space's own image (by digest, from the platform's registry): it has Python and tar,
and a volume it creates gets the image's /data owner, as the app's own would. They run as root so every file
keeps its owner and mode (``--numeric-owner``, ``-p``).

The app must be stopped while this runs (``Nodes`` scales it to 0 first), so a database in /data is copied
whole and not torn. The old node's copy stays (a backup until `docker volume prune` there).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.types import EndpointSpec, Mount, RestartPolicy, ServiceMode

from spaces_runtime.errors import BackendError
from spaces_runtime.supervisor.labels import PLATFORM_LABEL

MOVE_LABEL = "spaces-runtime.data-move"  # on the jobs: the space whose /data they copy
PORT = 7999  # inside the receiver; published in host mode on an ephemeral port of its node
COPY_TIMEOUT_S = 600.0
POLL_S = 0.2
NANO = 1_000_000_000

RECEIVE = """
import hmac, os, socket, subprocess, sys
token = os.environ["MOVE_TOKEN"].encode()
server = socket.create_server(("0.0.0.0", %(port)d))
server.settimeout(%(timeout)d)
while True:
    conn, _ = server.accept()
    conn.settimeout(60)
    got = b""
    while len(got) < len(token):
        part = conn.recv(len(token) - len(got))
        if not part:
            break
        got += part
    if hmac.compare_digest(got, token):
        break
    conn.close()  # not the sender: keep waiting for it
subprocess.run(["find", "/data", "-mindepth", "1", "-delete"], check=True)
tar = subprocess.Popen(["tar", "-x", "-p", "--numeric-owner", "-C", "/data", "-f", "-"], stdin=subprocess.PIPE)
while chunk := conn.recv(1 << 16):
    tar.stdin.write(chunk)
tar.stdin.close()
code = tar.wait()
conn.sendall(b"ok\\n" if code == 0 else b"tar failed\\n")
conn.close()
sys.exit(code)
"""

SEND = """
import os, socket, subprocess, sys
conn = socket.create_connection((os.environ["MOVE_ADDR"], int(os.environ["MOVE_PORT"])), timeout=60)
conn.sendall(os.environ["MOVE_TOKEN"].encode())
tar = subprocess.Popen(["tar", "-c", "--numeric-owner", "-C", "/data", "-f", "-", "."], stdout=subprocess.PIPE)
while chunk := tar.stdout.read(1 << 16):
    conn.sendall(chunk)
code = tar.wait()
conn.shutdown(socket.SHUT_WR)
answer = conn.recv(64)
print("receiver:", answer.decode(errors="replace").strip())
sys.exit(code or (0 if answer.startswith(b"ok") else 1))
"""


@dataclass(frozen=True)
class Move:
    space_id: str
    volume: str
    image: str
    source: str  # node id
    target: str  # node id
    target_address: str


def job_config(move: Move, *, role: str, token: str, platform: str, address: str = "",
               port: int = 0) -> dict[str, Any]:
    """Keyword arguments for ``client.services.create`` of the receiver or the sender job (pure)."""
    receiving = role == "receive"
    script = RECEIVE % {"port": PORT, "timeout": int(COPY_TIMEOUT_S)} if receiving else SEND
    env = [f"MOVE_TOKEN={token}"] + ([] if receiving else [f"MOVE_ADDR={address}", f"MOVE_PORT={port}"])
    labels = {PLATFORM_LABEL: platform, MOVE_LABEL: move.space_id}
    config: dict[str, Any] = {
        "image": move.image,
        "name": f"spaces-move-{token[:10].lower()}-{role}",
        "command": ["python3", "-c", script],
        "env": env,
        "user": "0:0",
        "labels": labels,
        "mounts": [Mount("/data", move.volume, type="volume", read_only=not receiving)],
        "mode": ServiceMode("replicated-job"),
        "restart_policy": RestartPolicy(condition="none"),
        "constraints": [f"node.id=={move.target if receiving else move.source}"],
    }
    if receiving:
        config["endpoint_spec"] = EndpointSpec(mode="dnsrr", ports=[{"Protocol": "tcp", "TargetPort": PORT,
                                                                     "PublishMode": "host"}])
    return config


class Copy:
    """One copy in two steps: ``start`` readies the receiver on the new node (pulling the image there, which the
    app's new task then finds) while the app still runs; ``finish``, once the app is stopped, streams the volume
    and waits for both ends. ``close`` removes the jobs whatever happened."""

    def __init__(self, client: docker.DockerClient, move: Move, platform: str) -> None:
        self.client, self.move, self.platform = client, move, platform
        self.token = secrets.token_hex(16)
        self._jobs: list[Any] = []
        self._port = 0

    def start(self) -> None:
        try:
            receiver = self.client.services.create(**job_config(self.move, role="receive", token=self.token,
                                                                platform=self.platform))
            self._jobs.append(receiver)
            self._port = _published_port(receiver, self.move)
        except docker.errors.DockerException as exc:
            raise BackendError(f"{self.move.space_id}: starting the receiver of its /data failed: {exc}") from None

    def finish(self) -> float:
        """Stream the volume; the seconds it took. Raises BackendError with the jobs' own words when it fails."""
        started = time.monotonic()
        try:
            sender = self.client.services.create(**job_config(self.move, role="send", token=self.token,
                                                              platform=self.platform,
                                                              address=self.move.target_address, port=self._port))
            self._jobs.append(sender)
            for job in reversed(self._jobs):
                _wait_complete(self.client, job, self.move)
        except docker.errors.DockerException as exc:
            raise BackendError(f"{self.move.space_id}: moving /data failed: {exc}") from None
        return time.monotonic() - started

    def close(self) -> None:
        for job in self._jobs:
            with contextlib.suppress(docker.errors.DockerException):
                job.remove()
        self._jobs.clear()


def _published_port(receiver: Any, move: Move) -> int:
    deadline = time.monotonic() + COPY_TIMEOUT_S
    while time.monotonic() < deadline:
        for task in receiver.tasks():
            status = task.get("Status", {})
            if status.get("State") in ("failed", "rejected"):
                raise BackendError(f"{move.space_id}: the receiver of its /data failed to start: {status.get('Err')}")
            ports = (status.get("PortStatus") or {}).get("Ports") or []
            if status.get("State") == "running" and ports and ports[0].get("PublishedPort"):
                return int(ports[0]["PublishedPort"])
        time.sleep(POLL_S)
    raise BackendError(f"{move.space_id}: the receiver of its /data did not start within {COPY_TIMEOUT_S:g} s")


def _wait_complete(client: docker.DockerClient, job: Any, move: Move) -> None:
    deadline = time.monotonic() + COPY_TIMEOUT_S
    while time.monotonic() < deadline:
        for task in job.tasks():
            state = task.get("Status", {}).get("State")
            if state == "complete":
                return
            if state in ("failed", "rejected", "shutdown"):
                raise BackendError(f"{move.space_id}: copying /data failed in {job.name}: "
                                   f"{task['Status'].get('Err') or state}; its output: {_output(client, job)}")
        time.sleep(POLL_S)
    raise BackendError(f"{move.space_id}: copying /data took longer than {COPY_TIMEOUT_S:g} s")


def _output(client: docker.DockerClient, job: Any) -> str:
    with contextlib.suppress(docker.errors.DockerException):
        raw = b"".join(client.api.service_logs(job.id, stdout=True, stderr=True, follow=False))
        return raw.decode("utf-8", errors="replace").strip()[-1000:] or "(none)"
    return "(unreadable)"
