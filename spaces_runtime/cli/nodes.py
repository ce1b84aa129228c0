"""`spaces nodes [drain|activate NAME]`: the swarm's nodes, and moving apps off one (swarm backend only)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from spaces_runtime.cli import JsonOpt, ServerOpt, app, client, out, print_json

nodes_app = typer.Typer(help="The swarm's nodes (spaces serve --backend swarm).", invoke_without_command=True,
                        no_args_is_help=False)
app.add_typer(nodes_app, name="nodes")
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the node's hostname (see `spaces nodes`)")]
GIB = 1024 ** 3


@nodes_app.callback()
def nodes(ctx: typer.Context, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Every node: role, state, availability, CPUs, memory, GPUs and the apps running there."""
    if ctx.invoked_subcommand is not None:
        return
    found: list[dict[str, Any]] = client(server).call("GET", "/api/nodes")
    if as_json:
        print_json(found)
        return
    table = Table("NAME", "ROLE", "STATE", "AVAILABILITY", "CPUS", "MEMORY", "GPUS", "APPS", box=None)
    for n in found:
        table.add_row(n["name"], n["role"], n["state"], n["availability"], f"{n['cpus']:g}",
                      f"{n['memory_bytes'] / GIB:.1f} GiB", str(n["gpus"]), ", ".join(n["apps"]) or "-")
    out.print(table)


@nodes_app.command()
def drain(name: NameArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Move the platform's apps off NAME (each a rolling update: no failed request), then drain it."""
    answer = client(server).call("POST", f"/api/nodes/{name}/drain")
    if as_json:
        print_json(answer)
        return
    moved = ", ".join(answer["moved"]) or "no apps"
    out.print(f"{name} drained; moving {moved} to the other nodes (spaces nodes shows where they run)")


@nodes_app.command()
def activate(name: NameArg, server: ServerOpt = None) -> None:
    """Let NAME take apps again (undoes drain)."""
    client(server).call("POST", f"/api/nodes/{name}/activate")
    out.print(f"{name} is active again")
