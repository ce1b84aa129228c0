"""An app in a real hardened container (uid 1000, read-only root, no network) reaches the host's model runner
through the mounted socket directory, as itself, with the client from the mounted appkit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import numpy as np
import pytest
from dockerkit import launch_spec

from builder.docker import BuiltImage
from spaces_runtime.appkit.install import appkit_env, kit_dir
from spaces_runtime.client import Runner
from spaces_runtime.config import Settings
from spaces_runtime.runner.options import socket_path
from spaces_runtime.runner.tokens import ADMIN, app_token, read_secret
from spaces_runtime.supervisor.docker import RUNNER_MOUNT, DockerBackend, container_config
from spaces_runtime.supervisor.tiers import MIB, Limits

torch = pytest.importorskip("torch") if not os.environ.get("CI") else __import__("torch")
REPO = Path(__file__).resolve().parents[2]
CALL = """
import json, numpy as np
from spaces_runtime.client import Runner
runner = Runner()
out = runner.model("lin").predict(np.arange(8, dtype=np.float32).reshape(2, 4))
print(json.dumps({"app": runner.status()["app"], "out": out.tolist(), "client": __import__("spaces_runtime").__file__}))
"""


@pytest.fixture
def runner(settings: Settings):
    """A runner process on the platform's data dir: its socket at the default place, {data_dir}/runner/."""
    proc = subprocess.Popen([sys.executable, "-m", "spaces_runtime.runner", "--data-dir", str(settings.data_dir),
                             "--threads", "1"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout and "runner listening" in proc.stdout.readline()
    yield Runner(f"unix://{socket_path(settings)}",
                 token=app_token(read_secret(settings.data_dir / "runner.secret"), ADMIN))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_an_app_container_calls_the_runner_as_itself(engine: docker.DockerClient, settings: Settings,
                                                     gradio_image: BuiltImage, runner: Runner,
                                                     tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 2).eval()
    torch.jit.save(torch.jit.script(model), str(tmp_path / "lin.pt"))
    runner.register("lin", tmp_path / "lin.pt", input_shape=[4])
    spec = launch_spec("alice/demo", gradio_image, "gradio", env=appkit_env(settings, "alice/demo"))
    backend = DockerBackend(settings, engine)
    args = backend._runner_args(spec, backend._image_config(gradio_image.tag))  # the image's PYTHONPATH
    volume = f"spaces-test-runner-{uuid.uuid4().hex[:8]}"
    config = container_config(spec, Limits(int(1e9), 512 * MIB, 256, 0), network="none", volume=volume,
                              platform="test-runner", generation=1, **args)
    assert config["environment"]["SPACES_RUNNER_URL"] == f"unix://{RUNNER_MOUNT}/runner.sock"
    config.update(command=["python", "-c", CALL], detach=True)
    container = engine.containers.run(**config)
    try:
        status = container.wait(timeout=120)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
        engine.volumes.get(volume).remove(force=True)
    assert status["StatusCode"] == 0, logs
    answer = json.loads(logs.strip().splitlines()[-1])
    assert answer["app"] == "alice/demo"  # the identity is the app's own token, not a claim
    assert answer["client"].startswith("/opt/spaces-appkit/")  # no platform install inside the image
    with torch.no_grad():
        want = model(torch.arange(8, dtype=torch.float32).reshape(2, 4)).numpy()
    np.testing.assert_allclose(np.array(answer["out"]), want, atol=1e-6)
    assert oct(socket_path(settings).stat().st_mode & 0o777) == "0o666"
    assert oct(kit_dir(settings).stat().st_mode & 0o777) == "0o755"
