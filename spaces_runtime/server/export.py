"""GET /api/spaces/{owner}/{name}/export/k8s: the space as Kubernetes manifests (``spaces export k8s``).

Whoever may see the space may export it (a private space is a 404 to others, as everywhere). Its secrets: their
names and values only with ``secret_values=1``, which needs the right to write the space (the same people who may
list and set its secrets); without it a writer gets the names with empty values and a reader gets no names.
Rendered from the code that serves and the plan the docker backend builds from it (``export.k8s``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query

from builder import plan as plans
from builder import spec as specs
from spaces_runtime.auth import rules
from spaces_runtime.deploy.environments import BuiltEnvironment
from spaces_runtime.errors import ConflictError
from spaces_runtime.export import k8s
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.auth import PlatformDep, PrincipalDep, seen
from spaces_runtime.supervisor.tiers import TIERS

router = APIRouter(prefix="/api/spaces/{owner}/{name}")


@router.get("/export/k8s")
def export_k8s(
    owner: str,
    name: str,
    p: PlatformDep,
    who: PrincipalDep,
    image: Annotated[str | None, Query(description="the image the cluster pulls")] = None,
    host: Annotated[str | None, Query(description="the cluster's domain for the host link")] = None,
    storage: Annotated[str | None, Query(description="/data claim size, or none")] = None,
    secret_values: Annotated[bool, Query(description="include the secrets' values")] = False,
) -> dict[str, Any]:
    """{manifests: [...], notes: [...], yaml: "..."}"""
    space_id = make_space_id(owner, name)
    record = seen(p, who, space_id)
    may_write = rules.may_write(who, space_id.split("/", 1)[0])
    if secret_values:
        rules.require_write(who, space_id, record.private)  # 401/403: reading a space is not reading its secrets
    if not record.code_dir:
        raise ConflictError(
            f"{space_id} has no deployed code yet", hint=f"deploy it first: spaces deploy DIR --name {space_id}"
        )
    folder = Path(record.code_dir)
    spec = specs.load(folder, name=record.name)
    plan = plans.make(spec, p.settings.model_copy(update={"backend": "docker"}))
    built = BuiltEnvironment(image=image or default_image(space_id, record.code_hash))
    launch = p.pipeline.launch_spec(space_id, spec, folder, built)
    keys = tuple(s.key for s in p.secrets.secrets(space_id)) if may_write else ()
    values = p.secrets.secret_values(space_id) if secret_values else None
    tier = TIERS.get(launch.hardware, TIERS["cpu-basic"])
    space = k8s.from_launch(
        launch,
        plan,
        tier,
        secret_keys=keys,
        secret_values=values,
        secrets_hidden=not may_write,
        host=host if host is not None else _host(p),
        storage=k8s.storage_size(spec.extra.get("suggested_storage"), storage),
    )
    if secret_values:
        p.accounts.audit(who, "export secrets", space_id, ", ".join(keys))  # names only, ever
    export = k8s.render(space)
    return {"manifests": export.manifests, "notes": export.notes, "yaml": k8s.to_yaml(export)}


def default_image(space_id: str, code_hash: str | None) -> str:
    return f"spaces-runtime/{space_id.replace('/', '-')}:{(code_hash or 'latest')[:12]}"


def _host(p: PlatformDep) -> str:
    """The platform's public host without its port: the host link's domain on the cluster by default."""
    return p.settings.public_link_host.rsplit(":", 1)[0]
