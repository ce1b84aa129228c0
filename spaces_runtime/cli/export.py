"""`spaces export k8s OWNER/NAME`: the space as Kubernetes manifests, rendered by the platform it runs on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from spaces_runtime.cli import IdArg, JsonOpt, ServerOpt, app, client, err, print_json
from spaces_runtime.names import split_id

export_app = typer.Typer(no_args_is_help=True, help="render a space for another platform")
app.add_typer(export_app, name="export", rich_help_panel="Platform")


@export_app.command("k8s")
def k8s(
    space_id: IdArg,
    image: Annotated[str | None, typer.Option(help="the image the cluster pulls (default: a name to push to)")] = None,
    host: Annotated[str | None, typer.Option(help="the cluster's domain for OWNER-NAME.HOST links")] = None,
    storage: Annotated[str | None, typer.Option(help="size of the /data claim (e.g. 20Gi), or none")] = None,
    secret_values: Annotated[
        bool, typer.Option("--secret-values", help="put the secrets' values in the Secret (writers only)")
    ] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the YAML here (mode 0600)")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deployment, Service, Ingress, Secret and /data claim for the space, as YAML for `kubectl apply -f`."""
    split_id(space_id)
    params: dict[str, str | int] = {"secret_values": int(secret_values)}
    params |= {key: value for key, value in (("image", image), ("host", host), ("storage", storage)) if value}
    answer = client(server).call("GET", f"/api/spaces/{space_id}/export/k8s", params=params)
    if as_json:
        print_json({"manifests": answer["manifests"], "notes": answer["notes"]})
        return
    if output is None:
        sys.stdout.write(answer["yaml"])
    else:
        output.touch(mode=0o600)  # it may hold secrets' values
        output.write_text(answer["yaml"])
        err.print(f"wrote {len(answer['manifests'])} manifests to {output}", highlight=False)
    for note in answer["notes"]:
        err.print(f"note: {note}", highlight=False, markup=False)
