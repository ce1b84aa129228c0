"""`spaces history | rollback`: a space's commits (every deploy is one) and going back to one of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.text import Text

from spaces_runtime.cli import (
    IdArg,
    JsonOpt,
    ServerOpt,
    app,
    client,
    err,
    out,
    print_json,
    report_failure,
    wait_for_outcome,
)
from spaces_runtime.names import split_id
from spaces_runtime.stages import ERROR_STAGES, Stage

CommitArg = Annotated[str, typer.Argument(metavar="COMMIT", help="a commit id (at least 4 hex digits)")]


@app.command(rich_help_panel="History")
def history(space_id: IdArg, limit: Annotated[int, typer.Option(help="how many commits")] = 30,
            server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """The space's commits, newest first: who, when, what, and the stage its deploy reached."""
    split_id(space_id)
    entries = client(server).call("GET", f"/api/spaces/{space_id}/history", params={"limit": limit})
    if as_json:
        print_json(entries)
        return
    if not entries:
        out.print(f"{space_id} has no commits yet: spaces deploy DIR, or git push to it")
        return
    for line in history_lines(entries):
        out.print(line, soft_wrap=True)  # one line per commit at any width; the message last and whole


def history_lines(entries: list[dict[str, Any]]) -> list[Text]:
    """`spaces history` as aligned columns (pure): the stage coloured, the commit that serves marked."""
    header = ("commit", "date", "author", "stage", "message")
    rows = [(e["commit"][:7], datetime.fromisoformat(e["date"]).astimezone().strftime("%Y-%m-%d %H:%M"),
             e["author"], (e.get("stage") or "-") + (" (running)" if e.get("running") else ""), e["message"])
            for e in entries]
    widths = [max(cell_len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = []
    for row in (header, *rows):
        line = Text(style="bold" if row is header else "")
        for i, cell in enumerate(row[:4]):
            line.append(cell.ljust(widths[i]) + "  ", style=_stage_style(cell) if i == 3 and row is not header
                        else "")
        lines.append(line.append(row[4]))
    return lines


def _stage_style(cell: str) -> str:
    stage = cell.split(" ", 1)[0]
    return "red" if stage in ERROR_STAGES else "green" if stage == Stage.RUNNING else "yellow"


@app.command(rich_help_panel="History")
def rollback(space_id: IdArg, commit: CommitArg, server: ServerOpt = None,
             timeout: Annotated[float, typer.Option(help="seconds to wait for RUNNING")] = 1800,
             as_json: JsonOpt = False) -> None:
    """Deploy an older commit's files again, as a new commit; the running version serves until it runs."""
    split_id(space_id)
    api = client(server)
    started = api.call("POST", f"/api/spaces/{space_id}/rollback", json={"commit": commit})
    if not as_json:
        err.print(f"[bold]rolling back[/] {space_id} to {started['restored'][:7]} as commit "
                  f"{started['commit'][:7]}; building…", highlight=False)
    for line in api.follow_log(space_id, "build"):
        if not as_json:
            err.print(line, markup=False, highlight=False, style="red" if "error" in line.lower() else "dim")
    space = wait_for_outcome(api, space_id, timeout, quiet=as_json)
    if as_json:
        print_json({**space, "commit": started["commit"], "restored": started["restored"]})
    if space["stage"] != Stage.RUNNING:
        report_failure(api, space, streamed=not as_json)
        raise typer.Exit(1)
    if not as_json:
        out.print(f"[green]RUNNING[/] {space_id} at commit {started['commit'][:7]} (the files of "
                  f"{started['restored'][:7]})  {space['url']}", highlight=False)
