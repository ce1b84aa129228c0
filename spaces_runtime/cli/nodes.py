"""`spaces nodes [drain|activate NAME]`: the swarm's nodes, and moving apps off one (swarm backend only)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from spaces_runtime.cli import JsonOpt, ServerOpt, app, client, err, out, print_json

nodes_app = typer.Typer(help="The swarm's nodes (spaces serve --backend swarm).", invoke_without_command=True,
                        no_args_is_help=False)
app.add_typer(nodes_app, name="nodes")
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the node's hostname (see `spaces nodes`)")]
GIB = 1024 ** 3
WAIT_S = 960.0  # a little over the platform's own wait for the rolling updates (swarm.nodes.DRAIN_WAIT_S)


@nodes_app.callback()
def nodes(ctx: typer.Context, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Every node: role, state, availability, CPUs, memory, GPUs and the apps running there."""
    if ctx.invoked_subcommand is not None:
        return
    found: list[dict[str, Any]] = client(server).call("GET", "/api/nodes")
    if as_json:
        print_json(found)
        return
    table = Table("NAME", "ROLE", "STATE", "AVAILABILITY", "CPUS", "MEMORY", "GPUS", "APPS", "/DATA OF", box=None)
    for n in found:
        table.add_row(n["name"], n["role"], n["state"], n["availability"], f"{n['cpus']:g}",
                      f"{n['memory_bytes'] / GIB:.1f} GiB", str(n["gpus"]), ", ".join(n["apps"]) or "-",
                      ", ".join(n.get("data") or []) or "-")
    out.print(table)
    for n in found:
        if n.get("drain_error"):
            err.print(f"{n['name']}: the last drain stopped short: {n['drain_error']}", markup=False)


@nodes_app.command()
def drain(name: NameArg, server: ServerOpt = None, as_json: JsonOpt = False,
          wait: Annotated[bool, typer.Option(help="return once the node is drained")] = True,
          empty_data: Annotated[bool, typer.Option(
              "--empty-data", help="start the spaces whose /data is on NAME elsewhere WITHOUT their data (for a "
                                   "node that is down; their data stays on it)")] = False) -> None:
    """Move the platform's apps off NAME (each a rolling update: no failed request; a space whose /data is on
    NAME stops while its data is copied to its new node), then drain it."""
    platform = client(server)
    answer = platform.call("POST", f"/api/nodes/{name}/drain", params={"empty_data": empty_data})
    if not as_json:
        moved = ", ".join(answer["moved"]) or "no apps"
        out.print(f"moving {moved} off {name} (rolling updates: each new task serves before an old one stops; "
                  "a space with its /data there stops for the copy)")
    deadline = time.monotonic() + WAIT_S
    while wait and time.monotonic() < deadline:
        node = next((n for n in platform.call("GET", "/api/nodes") if n["name"] == name), None)
        if node is not None and node.get("drain_error"):
            err.print(f"{name} was not drained: {node['drain_error']}", markup=False)
            raise typer.Exit(1)
        if node is None or node["availability"] == "drain":
            break
        time.sleep(1)
    if as_json:
        print_json(answer)
    elif wait:
        out.print(f"{name} drained; `spaces nodes` shows where the apps run now")


@nodes_app.command()
def activate(name: NameArg, server: ServerOpt = None) -> None:
    """Let NAME take apps again (undoes drain)."""
    client(server).call("POST", f"/api/nodes/{name}/activate")
    out.print(f"{name} is active again")
