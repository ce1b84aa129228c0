"""`spaces secrets | variables`: a space's environment, as on Hugging Face. A secret's value comes from stdin or a
hidden prompt, never from the command line (where `ps` and the shell's history would keep it)."""

from __future__ import annotations

import getpass
import sys
import time
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from spaces_runtime.cli import IdArg, JsonOpt, ServerOpt, app, client, out, print_json
from spaces_runtime.errors import InvalidNameError
from spaces_runtime.names import split_id

secrets_app = typer.Typer(help="A space's secrets: write-only, encrypted, its app's environment variables.",
                          no_args_is_help=True)
variables_app = typer.Typer(help="A space's variables: plain environment variables of its app, seen by members.",
                            no_args_is_help=True)
app.add_typer(secrets_app, name="secrets", rich_help_panel="Secrets and variables")
app.add_typer(variables_app, name="variables", rich_help_panel="Secrets and variables")
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="an environment variable's name, e.g. OPENAI_API_KEY")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="what it is for")]
RESTARTS = "a running app restarts with it"


def read_value(key: str) -> str:
    """The secret from a hidden prompt, or all of stdin (`< file`, a pipe) less one final line break."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {key} (hidden): ")
    else:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise InvalidNameError(f"no value for {key}", hint=f"type it at the prompt, or: spaces secrets set OWNER/NAME"
                                                           f" {key} < file")
    return value


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(datetime.fromisoformat(iso.replace("Z", "+00:00"))
                                                          .timestamp()))


def _body(key: str, value: str | None = None, description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key}
    if value is not None:
        body["value"] = value
    if description is not None:
        body["description"] = description
    return body


# --- secrets ---------------------------------------------------------------------------------------------------------
@secrets_app.command("set")
def secrets_set(space_id: IdArg, key: KeyArg, description: DescriptionOpt = None, server: ServerOpt = None) -> None:
    """Set a secret (asked for, or read from stdin); the app gets it as an environment variable."""
    split_id(space_id)
    value = read_value(key)
    client(server).call("POST", f"/api/spaces/{space_id}/secrets", json=_body(key, value, description))
    out.print(f"set secret {key} of {space_id}; {RESTARTS}", highlight=False)


@secrets_app.command("list")
def secrets_list(space_id: IdArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The secrets' names (a value is never shown, not even to its owner)."""
    split_id(space_id)
    found = client(server).call("GET", f"/api/spaces/{space_id}/secrets")
    if as_json:
        print_json(found)
        return
    table = Table("secret", "updated", "description", box=None)
    for key, info in found.items():
        table.add_row(Text(key), _when(info.get("updatedAt")), Text(info.get("description") or ""))
    out.print(table)


@secrets_app.command("delete")
def secrets_delete(space_id: IdArg, key: KeyArg, server: ServerOpt = None) -> None:
    """Delete a secret; the app no longer gets it."""
    split_id(space_id)
    client(server).call("DELETE", f"/api/spaces/{space_id}/secrets", json=_body(key))
    out.print(f"deleted secret {key} of {space_id}; {RESTARTS}, without it", highlight=False)


# --- variables -------------------------------------------------------------------------------------------------------
@variables_app.command("set")
def variables_set(space_id: IdArg, key: KeyArg, value: Annotated[str, typer.Argument(metavar="VALUE")],
                  description: DescriptionOpt = None, server: ServerOpt = None) -> None:
    """Set a variable (plain: whoever sees the space reads it; use `spaces secrets set` for keys)."""
    split_id(space_id)
    client(server).call("POST", f"/api/spaces/{space_id}/variables", json=_body(key, value, description))
    out.print(f"set variable {key} of {space_id}; {RESTARTS}", highlight=False)


@variables_app.command("list")
def variables_list(space_id: IdArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The variables with their values."""
    split_id(space_id)
    found = client(server).call("GET", f"/api/spaces/{space_id}/variables")
    if as_json:
        print_json(found)
        return
    table = Table("variable", "value", "updated", "description", box=None)
    for key, info in found.items():
        table.add_row(Text(key), Text(info["value"]), _when(info.get("updatedAt")),
                      Text(info.get("description") or ""))
    out.print(table)


@variables_app.command("delete")
def variables_delete(space_id: IdArg, key: KeyArg, server: ServerOpt = None) -> None:
    """Delete a variable; the app no longer gets it."""
    split_id(space_id)
    client(server).call("DELETE", f"/api/spaces/{space_id}/variables", json=_body(key))
    out.print(f"deleted variable {key} of {space_id}; {RESTARTS}, without it", highlight=False)
