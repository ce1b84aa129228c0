"""`spaces doctor`: what this host gives the app sandbox (namespaces, uid drop, network, cgroups)."""

from __future__ import annotations

import typer

from spaces_runtime.cli import app, out
from spaces_runtime.sandbox import preflight


@app.command(rich_help_panel="Platform")
def doctor() -> None:
    """Check what this host gives the app sandbox; exit 1 when something is missing."""
    checks = preflight.run_checks()
    for line in preflight.report(checks):
        out.print(line, markup=False, highlight=False)
    if preflight.missing(checks):
        raise typer.Exit(1)
