"""The `spaces` command: parses arguments, then calls the composition root (``spaces_runtime.wiring``) or the
REST client (``cli.remote``); errors end as one line, no traceback."""

from __future__ import annotations

import getpass
import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spaces_runtime.cli.remote import PlatformClient
from spaces_runtime.config import Settings
from spaces_runtime.errors import SpacesError
from spaces_runtime.names import split_id
from spaces_runtime.stages import ERROR_STAGES, Stage

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="spaces-runtime: deploy Gradio and Streamlit apps on your own machines and share a link.")
out = Console()
err = Console(stderr=True)

ServerOpt = Annotated[str | None, typer.Option("--server", help="platform URL (default: SPACES_SERVER)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
IdArg = Annotated[str, typer.Argument(metavar="OWNER/NAME")]


def client(server: str | None) -> PlatformClient:
    settings = Settings()
    return PlatformClient(server or settings.server, token=local_token(settings))


def local_token(settings: Settings) -> str | None:
    """SPACES_TOKEN, else the one `spaces login` stored, else the local admin token of the platform's data dir
    (readable only when this runs as the platform's user)."""
    if settings.token:
        return settings.token
    for path in (settings.config_dir / "token", settings.data_dir / "token"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


# --- serve ---------------------------------------------------------------------------------------------------
@app.command(rich_help_panel="Platform")
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 7000)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="where spaces, envs and logs live")] = None,
    backend: Annotated[str | None, typer.Option(help="process | docker | swarm")] = None,
    examples: Annotated[Path | None, typer.Option(help="deploy every app folder in this folder on start")] = None,
    public_host: Annotated[str | None, typer.Option(help="host name in shared links (default localhost:PORT)")] = None,
) -> None:
    """Run the platform: REST API, gallery, gateway, supervisor and model runner."""
    from spaces_runtime.wiring.serve import run_server

    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir, "backend": backend,
                                 "examples_dir": examples, "public_host": public_host}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    run_server(settings)


# --- deploy and lifecycle ---------------------------------------------------------------------------------------
def default_space_id(folder: Path, api: PlatformClient) -> str:
    """you/folder-name: you as the platform knows you (the token's user), else your login name."""
    try:
        who = str(api.call("GET", "/api/whoami-v2")["name"])
    except SpacesError:
        who = getpass.getuser()
    owner = re.sub(r"[^a-z0-9\-_.]", "-", who.lower()).strip("-._") or "me"
    name = re.sub(r"[^a-z0-9\-_.]", "-", folder.resolve().name.lower()).strip("-._") or "app"
    return f"{owner}/{name}"


@app.command(rich_help_panel="Deploy and run")
def deploy(
    folder: Annotated[Path, typer.Argument(help="the app folder")],
    name: Annotated[str | None, typer.Option("--name", help="OWNER/NAME (default: you/folder-name)")] = None,
    server: ServerOpt = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for RUNNING")] = 1800,
    private: Annotated[bool | None, typer.Option("--private/--public",
                                                 help="who sees it (default: public when new, else unchanged)")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload an app folder, stream its build log, and wait until it runs; prints its link."""
    api = client(server)
    space_id = name or default_space_id(folder, api)
    split_id(space_id)
    version = api.deploy(space_id, folder, private).get("uploaded_version")
    if not as_json:
        err.print(f"[bold]uploaded[/] {folder} → {space_id} (version {version}); building…")
    for line in api.follow_log(space_id, "build"):
        if not as_json:
            err.print(line, markup=False, highlight=False, style="red" if "error" in line.lower() else "dim")
    space = wait_for_outcome(api, space_id, timeout, quiet=as_json)
    if as_json:
        print_json(space)
    newer = space.get("latest_version")
    if version is not None and newer is not None and newer != version:
        err.print(f"[yellow]superseded[/] {space_id}: version {version} was superseded by a newer upload "
                  f"(version {newer}), whose outcome this is not", highlight=False)
        raise typer.Exit(1)
    if space["stage"] != Stage.RUNNING:
        report_failure(api, space, streamed=not as_json)
        raise typer.Exit(1)
    if not as_json:
        out.print(f"[green]RUNNING[/] {space['title']}  {space['url']}")
        out.print(f"        also at {space['host_url']}", highlight=False)


def wait_for_outcome(api: PlatformClient, space_id: str, timeout: float, quiet: bool) -> dict[str, Any]:
    """Poll until the space runs or fails; show stage changes."""
    deadline = time.monotonic() + timeout
    last = ""
    with err.status("waiting for the app…", spinner="dots") as status:
        while True:
            space = api.get(space_id)
            if space["stage"] != last and not quiet:
                status.update(f"{space['stage']}…")
                last = space["stage"]
            if space["stage"] == Stage.RUNNING or space["stage"] in ERROR_STAGES:
                return space
            if space["stage"] == Stage.APP_STARTING and space.get("error"):  # waiting for its node: says why
                return space
            if space["stage"] in (Stage.PAUSED, Stage.STOPPED) or time.monotonic() > deadline:
                return space
            time.sleep(0.5)


def report_failure(api: PlatformClient, space: dict[str, Any], streamed: bool = False) -> None:
    kind = "run" if space["stage"] in (Stage.RUNTIME_ERROR, Stage.APP_STARTING) else "build"
    if streamed and kind == "build" and space["stage"] in ERROR_STAGES:
        # the build log just shown ends with the error line, the failing output above it: not again
        err.print(f"[red]{space['stage']}[/] {space['id']} (the build log above says why)", highlight=False)
        return
    err.print(f"[red]{space['stage']}[/] {space['id']}: {space.get('error') or 'did not reach RUNNING'}",
              highlight=False)
    tail = "\n".join(api.log_text(space["id"], kind).splitlines()[-25:])
    if tail:
        err.print(f"--- last lines of the {kind} log ---", style="dim")
        err.print(tail, markup=False, highlight=False)


@app.command("list", rich_help_panel="Deploy and run")
def list_spaces(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List the spaces on the platform."""
    spaces = client(server).spaces()
    if as_json:
        print_json(spaces)
        return
    if not spaces:
        out.print("no spaces yet: spaces deploy ./my-app")
    for line in listing_lines(spaces):
        # one line per space whatever the width (80 when piped): a link folded or cut short is no link
        out.print(line, soft_wrap=True)


def listing_lines(spaces: list[dict[str, Any]]) -> list[Text]:
    """`spaces list` as aligned columns, the URL last and whole (pure)."""
    header = ("", "space", "stage", "sdk", "url")
    rows = [(s["emoji"], s["id"], s["stage"], s["sdk"] or "", s["url"]) for s in spaces]
    widths = [max(cell_len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = []
    for row in (header, *rows):
        line = Text(style="bold" if row is header else "")
        for i, cell in enumerate(row[:4]):
            line.append(cell + " " * (widths[i] - cell_len(cell)) + "  ", style=_stage_style(row[2]) if i == 2
                        and row is not header else "")
        lines.append(line.append(row[4]))
    return lines


def _stage_style(stage: str) -> str:
    return "red" if stage in ERROR_STAGES else "green" if stage == Stage.RUNNING else "yellow"


@app.command(rich_help_panel="Deploy and run")
def status(space_id: IdArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Show one space: stage, link, error."""
    split_id(space_id)
    space = client(server).get(space_id)
    if as_json:
        print_json(space)
        return
    out.print(f"{space['emoji']} [bold]{space['title']}[/] ({space['id']})")
    out.print(f"stage: {space['stage']}\nsdk:   {space['sdk']}\nurl:   {space['url']}", highlight=False)
    hardware = space.get("hardware") or {}
    if hardware.get("current"):
        out.print(f"hardware: {hardware['current']} ({hardware['source']})", highlight=False)
    pss = (space.get("memory") or {}).get("pss_bytes")
    if pss is not None:
        out.print(f"memory: {pss / 2**20:.0f} MiB (PSS of all its processes)", highlight=False)
    storage = space.get("storage") or {}
    if storage.get("quota_bytes"):
        out.print(f"storage: {storage['lfs_bytes'] / 2**20:.1f} MiB of LFS files, of its "
                  f"{storage['quota_bytes'] / 2**20:.0f} MiB quota", highlight=False)
    if space.get("error"):
        err.print(f"error: {space['error']}", markup=False, highlight=False)


@app.command(rich_help_panel="Deploy and run")
def logs(
    space_id: IdArg,
    build: Annotated[bool, typer.Option("--build", help="the build log (default: the run log)")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a space's run log (or --build log)."""
    split_id(space_id)
    api, kind = client(server), "build" if build else "run"
    if follow:
        for line in api.follow_log(space_id, kind):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return
    text = api.log_text(space_id, kind)
    if as_json:
        print_json({"id": space_id, "kind": kind, "lines": text.splitlines()})
    else:
        sys.stdout.write(text)


def _lifecycle(verb: str, space_id: str, server: str | None, as_json: bool) -> None:
    split_id(space_id)
    result = client(server).action(space_id, verb)
    if as_json:
        print_json(result)
    else:
        out.print(f"{space_id}: {result.get('stage')}")


@app.command(rich_help_panel="Deploy and run")
def restart(space_id: IdArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Restart a space (rebuilds only what changed)."""
    _lifecycle("restart", space_id, server, as_json)


@app.command(rich_help_panel="Deploy and run")
def pause(space_id: IdArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Stop a space until it is restarted."""
    _lifecycle("pause", space_id, server, as_json)


@app.command(rich_help_panel="Deploy and run")
def delete(space_id: IdArg, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a space, its code and its logs."""
    _lifecycle("delete", space_id, server, as_json)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, rich_help_panel="Platform")
def runner(ctx: typer.Context) -> None:
    """Run the model runner alone (`spaces serve` starts one itself); `spaces runner --help` lists its flags."""
    from spaces_runtime.runner.__main__ import main as runner_main

    runner_main(list(ctx.args))


@app.command(rich_help_panel="Platform")
def models(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """List the models the platform's runner serves (task, size, loaded, device)."""
    found = client(server).models()
    if as_json:
        print_json(found)
        return
    per_node = any("node" in m for m in found)  # the swarm backend: a runner per node
    table = Table("model", "task", "size", "loaded", "device", *(["node"] if per_node else []), box=None)
    for m in found:
        size = f"{(m.get('size_bytes') or 0) / 1e6:.1f} MB"
        table.add_row(m["name"], m.get("task") or "", size, "yes" if m.get("loaded") else "no", m.get("device") or "",
                      *([m.get("node") or ""] if per_node else []))
    out.print(table if found else "the model runner serves no models (is it enabled? torch installed?)")


# --- local authoring ----------------------------------------------------------------------------------------------
@app.command(rich_help_panel="Author")
def init(
    folder: Annotated[Path, typer.Argument(help="folder to create")],
    sdk: Annotated[str, typer.Option(help="gradio | streamlit | docker | static")] = "gradio",
) -> None:
    """Scaffold a new app folder from the templates."""
    from spaces_runtime.cli.scaffold import scaffold

    created = scaffold(folder, sdk, Settings())
    out.print(f"created {folder} ({sdk}): {', '.join(created)}", soft_wrap=True)
    out.print(next_steps(folder, sdk), highlight=False, soft_wrap=True)  # commands stay whole to copy


def next_steps(folder: Path, sdk: str) -> str:
    """What to do with a new app folder (pure). `spaces run` and the default (process) backend refuse docker
    apps: those are built by the Docker Engine."""
    if sdk == "docker":
        return (f"next: spaces build {folder}   builds its image and prints the `docker run` line that serves it\n"
                f"      spaces deploy {folder}  on a platform started with `spaces serve --backend docker`")
    return f"next: spaces run {folder}   or   spaces deploy {folder}"


@app.command(rich_help_panel="Author")
def run(
    folder: Annotated[Path, typer.Argument(help="the app folder")],
    port: Annotated[int, typer.Option(help="port to serve on")] = 7860,
) -> None:
    """Build and run one app locally exactly as the platform would, in the foreground."""
    from spaces_runtime.wiring.local import run_local

    raise typer.Exit(run_local(folder, port, Settings()))


@app.command(rich_help_panel="Author")
def build(
    folder: Annotated[Path, typer.Argument(help="the app folder")],
    as_json: JsonOpt = False,
) -> None:
    """Build the app's container image with the local Docker Engine; `docker run -p 7860:7860 IMAGE` serves it."""
    from spaces_runtime.wiring.docker import build_image

    built = build_image(folder, Settings(backend="docker"), lambda line: err.print(line, markup=False,
                                                                                     highlight=False))
    if as_json:
        print_json({"image": built.tag, "id": built.id, "reused": built.reused, "app_port": built.app_port})
        return
    out.print(f"[green]built[/] {built.tag}{' (found, not rebuilt)' if built.reused else ''}")
    out.print(f"run it: docker run --rm -p 7860:{built.app_port} {built.tag}", highlight=False)


@app.command("base-image", rich_help_panel="Platform")
def base_image() -> None:
    """Make sure the base image for app images exists: pulled when reachable, else bootstrapped from Debian."""
    from spaces_runtime.wiring.docker import bootstrap_base_image

    tag = bootstrap_base_image(Settings(), lambda line: err.print(line, markup=False, highlight=False))
    out.print(f"base image: {tag}")


# --- housekeeping: gc, backup, restore ----------------------------------------------------------------------------
@app.command(rich_help_panel="Platform")
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would go and the bytes freed; remove nothing")]
    = False,
    show_kept: Annotated[bool, typer.Option("--kept", help="also list what stays, and why")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collect the environments, images and build cache no space uses (the platform does it, on its data dir)."""
    from spaces_runtime.housekeeping.gc import human_bytes

    report = client(server).gc(dry_run)
    if as_json:
        print_json(report)
        return
    rows = report["collect"] + (report["keep"] if show_kept else [])
    table = Table("", "kind", "what", "size", "why", box=None)
    for row in rows:
        mark = "[red]-[/]" if row in report["collect"] else "[green]=[/]"
        table.add_row(mark, row["kind"], row["key"][:40], human_bytes(row["bytes"]), row["reason"])
    if rows:
        out.print(table)
    freed = report["bytes_to_free"] if dry_run else report["freed_bytes"]
    verb = "would free" if dry_run else "freed"
    out.print(f"{verb} {human_bytes(freed)} ({len(report['collect'])} items); {len(report['keep'])} kept "
              f"(--kept lists them)", highlight=False)
    for note in report["notes"]:
        err.print(f"note: {note}", markup=False, highlight=False)
    for failure in report["failures"]:
        err.print(f"[yellow]not removed:[/] {failure}", highlight=False)


@app.command(rich_help_panel="Platform")
def backup(
    dest: Annotated[Path, typer.Argument(help="a new .tar.gz file, or a new folder")],
    logs: Annotated[bool, typer.Option("--logs", help="include the build and run logs")] = False,
    data_dir: Annotated[Path | None, typer.Option(
        help="back up this data dir directly instead of asking the platform (safe while it serves)")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a consistent snapshot: the store (SQLite's online backup), each space's code, recorded environment
    locks and the token. Environments and images are not in it: a restore rebuilds them."""
    from spaces_runtime.housekeeping import backup as backups

    if data_dir is not None:
        summary = backups.write_backup(Settings(data_dir=data_dir), dest, logs)
        spaces: list[str] | None = summary.spaces
    else:
        if dest.exists():
            raise SpacesError(f"{dest} already exists", hint="name a new .tar.gz file or a new folder")
        archive = dest if backups.is_archive(dest) else dest.with_name(f".{dest.name}.download.tar.gz")
        try:
            client(server).download_backup(archive, logs)
            if archive != dest:
                backups.unpack(archive, dest)
        finally:
            if archive != dest:
                archive.unlink(missing_ok=True)
        spaces = None
    if as_json:
        print_json({"path": str(dest), "spaces": spaces})
        return
    out.print(f"backup written to {dest}", highlight=False)
    out.print(f"restore it on a fresh data dir: spaces restore {dest} --data-dir NEW_DIR, then "
              "spaces serve --data-dir NEW_DIR", highlight=False)


@app.command(rich_help_panel="Platform")
def restore(
    src: Annotated[Path, typer.Argument(help="the .tar.gz or folder `spaces backup` wrote")],
    data_dir: Annotated[Path | None, typer.Option(help="a new, empty data dir (default: SPACES_DATA_DIR)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into a fresh data dir, before `spaces serve` starts on it (offline: the platform then
    starts every space that was running, rebuilding its environment)."""
    from spaces_runtime.housekeeping.backup import restore as restore_backup

    target = data_dir or Settings().data_dir
    summary = restore_backup(src, target)
    if as_json:
        print_json(summary.as_json())
        return
    out.print(f"restored {len(summary.spaces)} spaces into {summary.path}", highlight=False)
    for note in summary.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    out.print(f"next: spaces serve --data-dir {summary.path}", highlight=False)


def main() -> None:
    try:
        app()
    except SpacesError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except ValidationError as exc:  # a bad flag or SPACES_* variable
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]error:[/] invalid setting: {problems}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


from spaces_runtime.cli import doctor, export, history, nodes, people, secrets  # noqa: E402, F401  (their commands register on `app`)
