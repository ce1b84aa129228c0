"""The platform's own image registry (Debian's ``docker-registry``, the CNCF distribution registry), started and
stopped with the platform, its storage under the data dir.

Every node pulls app images from it by digest, so no node needs an external registry. It listens on the
manager's swarm address only (plain HTTP): the swarm's nodes reach it on their private network, nothing else
needs to. Engines refuse plain HTTP except to 127.0.0.0/8, so each node's daemon.json names this address under
``insecure-registries`` (README: Docker Swarm); a registry on a network anyone else can reach wants TLS instead
(``http.tls`` in the same config file), which this does not set up.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from spaces_runtime.errors import BackendError

START_WAIT_S = 20.0
_PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the platform's process ends, however it ends (kill -9 too), so the
    registry never outlives the platform that started it; the next start starts it again on the same storage."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def registry_config(storage: Path, address: str) -> str:
    """The registry's config file (pure): filesystem storage, one listener, deletes allowed for `spaces gc`."""
    return yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": address},
    }, sort_keys=False)


class Registry:
    def __init__(self, binary: Path, root: Path, address: str) -> None:
        self.binary = binary
        self.root = root
        self.address = address  # host:port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        if self.answers():
            return  # one left running by a platform killed with -9; same storage, so it is as good
        if not self.binary.exists():
            raise BackendError(f"the image registry {self.binary} is not installed",
                               hint="apt-get install docker-registry (the swarm backend's nodes pull from it)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(registry_config(self.root / "storage", self.address))
        log = (self.root / "registry.log").open("ab")
        self._process = subprocess.Popen([str(self.binary), "serve", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_end_with_parent)
        deadline = time.monotonic() + START_WAIT_S
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "registry.log").read_text()[-1500:]
                self.stop()
                raise BackendError(f"the image registry did not start on {self.address}: {tail}",
                                   hint="is the address this host's and the port free?")
            time.sleep(0.1)

    def answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/v2/", timeout=1).status_code == 200
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
