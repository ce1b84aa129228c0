"""What each space adds to its app, from its variables and secrets: the environment at start (with the runner's
address and token) and the inputs of its own Dockerfile's build. (The mask over its logs is
``SpaceSecrets.mask``, which the wiring hands the LogBook.)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spaces_runtime.auth.secrets import SpaceSecrets
from spaces_runtime.deploy.pipeline import AppEnv

if TYPE_CHECKING:
    from builder.docker.build import SpaceInputs


class SpaceEnv:
    """The pipeline's ``app_env``: variables, then secrets, then what the platform itself sets (the runner's
    SPACES_* and PYTHONPATH; the names secrets may not take), so a platform variable always wins."""

    def __init__(self, secrets: SpaceSecrets, apps_dir: Path, runner_env: AppEnv | None = None) -> None:
        self.secrets = secrets
        self.apps_dir = apps_dir
        self.runner_env = runner_env

    def __call__(self, space_id: str) -> dict[str, str]:
        platform = self.runner_env(space_id) if self.runner_env is not None else {}
        return {**self.secrets.variable_values(space_id), **self.secrets.secret_values(space_id), **platform}

    def secret_keys(self, space_id: str) -> frozenset[str]:
        """The pipeline's ``secret_keys``: the names among ``self(space_id)`` that are secrets."""
        return frozenset(self.secrets.secret_values(space_id))

    def build_inputs(self, app_folder: Path) -> SpaceInputs:
        """The docker builder's ``inputs_of``: it knows the folder it builds, the space is the folder's place."""
        from builder.docker.build import SpaceInputs  # the docker SDK, only for the docker backend
        space_id = space_of_folder(self.apps_dir, app_folder)
        if space_id is None:  # `spaces build DIR`: a folder of no space
            return SpaceInputs()
        return SpaceInputs(variables=self.secrets.variable_values(space_id),
                           secrets=self.secrets.secret_values(space_id))


def space_of_folder(apps_dir: Path, folder: Path) -> str | None:
    """apps/OWNER/NAME/versions/N[/inner] → OWNER/NAME (spaces_runtime.deploy.versions' layout); None elsewhere."""
    try:
        parts = folder.resolve().relative_to(apps_dir.resolve()).parts
    except ValueError:
        return None
    return f"{parts[0]}/{parts[1]}" if len(parts) >= 4 and parts[2] == "versions" else None
