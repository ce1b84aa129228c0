"""`spaces login | whoami | users | orgs | tokens | sessions | settings | events`: people, their tokens and web
sessions, and who did what."""

from __future__ import annotations

import getpass
import os
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from spaces_runtime.cli import IdArg, JsonOpt, ServerOpt, app, client, err, out, print_json
from spaces_runtime.cli.remote import PlatformClient
from spaces_runtime.config import Settings
from spaces_runtime.errors import AuthError, SpacesError
from spaces_runtime.names import split_id

users_app = typer.Typer(help="Users of the platform (admins only).", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations and their members.", no_args_is_help=True)
tokens_app = typer.Typer(help="Access tokens: create (shown once), list, revoke.", no_args_is_help=True)
app.add_typer(users_app, name="users", rich_help_panel="People")
app.add_typer(orgs_app, name="orgs", rich_help_panel="People")
app.add_typer(tokens_app, name="tokens", rich_help_panel="People")
sessions_app = typer.Typer(help="Where you are signed in on the web: list, revoke one, or all.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions", rich_help_panel="People")
RoleOpt = Annotated[str, typer.Option("--role", help="read | write | admin")]


# --- signing in ------------------------------------------------------------------------------------------------------
@app.command(rich_help_panel="People")
def login(
    token: Annotated[str | None, typer.Option("--token", help="the token (default: asked for, or read from stdin)")]
    = None,
    server: ServerOpt = None,
) -> None:
    """Store a token where the CLI finds it (SPACES_TOKEN still wins), after checking it with the platform."""
    secret = (token or _read_secret("token: ")).strip()
    settings = Settings()
    who = PlatformClient(server or settings.server, token=secret).call("GET", "/api/whoami-v2")
    path = settings.config_dir / "token"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stored:
        stored.write(secret + "\n")
    out.print(f"logged in as [bold]{who['name']}[/] (token saved to {path})", highlight=False)


@app.command(rich_help_panel="People")
def whoami(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Who the platform thinks you are, your organizations and your token's role."""
    who = client(server).call("GET", "/api/whoami-v2")
    if as_json:
        print_json(who)
        return
    orgs = ", ".join(f"{o['name']} ({o['roleInOrg']})" for o in who["orgs"]) or "none"
    role = who["auth"]["accessToken"]["role"]
    out.print(f"{who['name']}{' (admin)' if who['isAdmin'] else ''}  token role: {role}  orgs: {orgs}",
              highlight=False)


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline()


# --- users and organizations -----------------------------------------------------------------------------------------
@users_app.command("add")
def users_add(name: str, admin: Annotated[bool, typer.Option("--admin", help="a platform admin")] = False,
              server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Add a user; then `spaces tokens create --user NAME` gives them a token."""
    user = client(server).call("POST", "/api/users", json={"name": name, "admin": admin})
    if as_json:
        print_json(user)
        return
    out.print(f"added user {user['name']}{' (admin)' if user['admin'] else ''}; give them a token: "
              f"spaces tokens create --user {user['name']}", highlight=False)


@users_app.command("list")
def users_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    found = client(server).call("GET", "/api/users")
    if as_json:
        print_json(found)
        return
    table = Table("user", "admin", "organizations", "state", box=None)
    for user in found:
        table.add_row(user["name"], "yes" if user["admin"] else "", ", ".join(
            f"{org} ({role})" for org, role in user["orgs"].items()), "[red]disabled[/]" if user.get("disabled")
            else "active")
    out.print(table)


@users_app.command("disable")
def users_disable(name: str, server: ServerOpt = None) -> None:
    """Lock a user out at once: their tokens and password open nothing, their browsers are signed out."""
    client(server).call("POST", f"/api/users/{name}/disable")
    out.print(f"disabled {name}; `spaces users enable {name}` lets them back in with the same tokens",
              highlight=False)


@users_app.command("enable")
def users_enable(name: str, server: ServerOpt = None) -> None:
    client(server).call("POST", f"/api/users/{name}/enable")
    out.print(f"enabled {name}", highlight=False)


@orgs_app.command("add")
def orgs_add(org: str, server: ServerOpt = None) -> None:
    """Add an organization (admins only); spaces deploy into it as ORG/NAME."""
    client(server).call("POST", "/api/orgs", json={"name": org})
    out.print(f"added organization {org}; add members: spaces orgs add-member {org} USER --role write")


@orgs_app.command("add-member")
def orgs_add_member(org: str, user: str, role: RoleOpt = "write", server: ServerOpt = None) -> None:
    """Add USER to ORG, or change their role: read sees private spaces, write deploys, admin manages members."""
    client(server).call("PUT", f"/api/orgs/{org}/members/{user}", json={"role": role})
    out.print(f"{user} is now {role} in {org}")


@orgs_app.command("remove-member")
def orgs_remove_member(org: str, user: str, server: ServerOpt = None) -> None:
    client(server).call("DELETE", f"/api/orgs/{org}/members/{user}")
    out.print(f"{user} is no longer in {org}")


@orgs_app.command("list")
def orgs_list(server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    found = client(server).call("GET", "/api/orgs")
    if as_json:
        print_json(found)
        return
    table = Table("organization", "members", box=None)
    for org, members in found.items():
        table.add_row(org, ", ".join(f"{user} ({role})" for user, role in members.items()))
    out.print(table)


# --- tokens ----------------------------------------------------------------------------------------------------------
@tokens_app.command("create")
def tokens_create(
    user: Annotated[str | None, typer.Option("--user", help="for whom (admins; default: yourself)")] = None,
    name: Annotated[str, typer.Option("--name", help="what it is for, e.g. laptop or ci")] = "cli",
    role: RoleOpt = "write",
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    made = client(server).call("POST", "/api/tokens", json={"user": user, "name": name, "role": role})
    if as_json:
        print_json(made)
        return
    err.print(f"token {made['id']} for {made['user']} ({made['role']}): shown once, keep it safe", highlight=False)
    sys.stdout.write(made["token"] + "\n")


@tokens_app.command("list")
def tokens_list(user: Annotated[str | None, typer.Option("--user")] = None, server: ServerOpt = None,
                as_json: JsonOpt = False) -> None:
    found = client(server).call("GET", "/api/tokens", params={"user": user} if user else None)
    if as_json:
        print_json(found)
        return
    table = Table("id", "user", "name", "role", "last used", "state", box=None)
    for token in found:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(token["last_used_at"])) if token["last_used_at"] \
            else "never"
        table.add_row(str(token["id"]), token["user"], token["name"], token["role"], used,
                      "[red]revoked[/]" if token["revoked"] else "active")
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int | None, typer.Argument(help="the id `spaces tokens list` shows")] = None,
    every: Annotated[bool, typer.Option("--all", help="every token, and every web session, of the user")] = False,
    user: Annotated[str | None, typer.Option("--user", help="with --all: another user's (admins only)")] = None,
    server: ServerOpt = None,
) -> None:
    """Revoke a token at once: its next request is refused. --all: every token of yours (or --user NAME's), and
    their web sessions end too."""
    if (token_id is None) == (not every):
        err.print("name one token id, or --all for every token", highlight=False)
        raise typer.Exit(2)
    if every:
        done = client(server).call("DELETE", "/api/tokens", params={"user": user} if user else None)
        out.print(f"revoked {len(done['revoked'])} tokens of {done['user']} and ended {done['sessions_ended']} "
                  "web sessions", highlight=False)
        if done.get("kept"):
            out.print(f"kept the platform's own token (id {', '.join(map(str, done['kept']))}, in its data dir); "
                      "revoke it by id if that is meant", highlight=False)
        return
    revoked = client(server).call("DELETE", f"/api/tokens/{token_id}")
    out.print(f"revoked token {revoked['id']} ({revoked['name']} of {revoked['user']})", highlight=False)


# --- web sessions --------------------------------------------------------------------------------------------------
@sessions_app.command("list")
def sessions_list(user: Annotated[str | None, typer.Option("--user", help="another user's (admins only)")] = None,
                  server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Your browsers' sessions (the same as the web's Sessions page)."""
    found = client(server).call("GET", "/api/sessions", params={"user": user} if user else None)
    if as_json:
        print_json(found)
        return
    table = Table("id", "user", "browser", "address", "signed in", "last used", box=None)
    for session in found:
        table.add_row(str(session["id"]), session["user"], session["user_agent"][:60] or "-", session["address"],
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(session["created_at"])),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(session["last_seen_at"])))
    out.print(table)


@sessions_app.command("revoke")
def sessions_revoke(
    session_id: Annotated[int | None, typer.Argument(help="the id `spaces sessions list` shows")] = None,
    every: Annotated[bool, typer.Option("--all", help="sign out everywhere")] = False,
    user: Annotated[str | None, typer.Option("--user", help="with --all: another user's (admins only)")] = None,
    server: ServerOpt = None,
) -> None:
    """End one web session at once, or with --all every one of yours (an admin: --user NAME's)."""
    if (session_id is None) == (not every):
        err.print("name one session id, or --all for every session", highlight=False)
        raise typer.Exit(2)
    if every:
        ended = client(server).call("DELETE", "/api/sessions", params={"user": user} if user else None)
        out.print(f"signed {ended['user']} out everywhere ({ended['ended']} sessions ended)", highlight=False)
        return
    ended = client(server).call("DELETE", f"/api/sessions/{session_id}")
    out.print(f"ended session {ended['id']} of {ended['user']}", highlight=False)


# --- a space's settings and the audit trail ----------------------------------------------------------------------
@app.command(rich_help_panel="People")
def settings(
    space_id: IdArg,
    private: Annotated[str | None, typer.Option("--private", metavar="true|false",
                                                help="true: only its members see it")] = None,
    sleep_time: Annotated[int | None, typer.Option("--sleep-time", metavar="SECONDS",
                                                   help="it sleeps after this long without a visit; -1: never")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", metavar="TIER",
                                                 help="the tier it runs on (cpu-basic, cpu-upgrade, t4-small, ...); "
                                                      "default: the README's suggested_hardware again")] = None,
    replicas: Annotated[int | None, typer.Option("--replicas", metavar="N",
                                                 help="instances serving it (swarm backend); 0: the README's")] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a space's settings (visibility, sleep time, hardware, replicas); a new tier or replica count
    restarts it."""
    split_id(space_id)
    api = client(server)
    if sleep_time is not None:  # the Hub's own route, as huggingface_hub's set_space_sleep_time calls it
        api.call("POST", f"/api/spaces/{space_id}/sleeptime", json={"seconds": sleep_time})
    run: dict[str, Any] = {}
    if hardware is not None or replicas is not None:
        run = api.call("PUT", f"/api/spaces/{space_id}/run", json={"hardware": hardware, "replicas": replicas})
    body = {} if private is None else {"private": _truth(private, "--private")}
    result = api.call("PUT", f"/api/spaces/{space_id}/settings", json=body)
    if sleep_time is not None:
        result = {**result, "sleep_time": sleep_time}
    if run:
        result = {**result, "hardware": run["hardware"], "replicas": run["replicas"]}
    if as_json:
        print_json(result)
        return
    out.print(f"{space_id}: {'private' if result['private'] else 'public'}")
    if sleep_time is not None:
        out.print(f"{space_id}: {'never sleeps' if sleep_time < 0 else f'sleeps after {sleep_time} s without a visit'}")
    if run:
        for what in ("hardware", "replicas"):
            out.print(f"{space_id}: {what} {run[what]['current']} ({run[what]['source']})", highlight=False)


@app.command(rich_help_panel="People")
def share(
    space_id: IdArg,
    expires: Annotated[str, typer.Option("--expires", help="how long the link works: 30m, 24h, 7d")] = "24h",
    revoke: Annotated[bool, typer.Option("--revoke", help="end every share link of the space now")] = False,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a link that opens a private space for anyone holding it, until it expires."""
    split_id(space_id)
    api = client(server)
    if revoke:
        result = api.call("POST", f"/api/spaces/{space_id}/share/revoke")
        print_json(result) if as_json else out.print(f"{space_id}: every share link revoked")
        return
    made = api.call("POST", f"/api/spaces/{space_id}/share", json={"expires": expires})
    if as_json:
        print_json(made)
        return
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(made["expires_at"]))
    err.print(f"anyone with this link opens {space_id} until {until}:", highlight=False)
    sys.stdout.write(made["url"] + "\n")


def _truth(value: str, option: str) -> bool:
    if value.lower() in ("true", "yes", "1", "on"):
        return True
    if value.lower() in ("false", "no", "0", "off"):
        return False
    raise SpacesError(f"{option} takes true or false, not {value!r}", hint=f"{option} true")


@app.command(rich_help_panel="People")
def events(
    space_id: Annotated[str | None, typer.Argument(metavar="[OWNER/NAME]", help="one space (default: all, admins)")]
    = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Who wrote what, when, and with which token."""
    params = {"space": space_id} if space_id else None
    try:
        found = client(server).call("GET", "/api/audit", params=params)
    except AuthError as exc:
        raise SpacesError(str(exc), hint="log in first: spaces login") from exc
    if as_json:
        print_json(found)
        return
    table = Table("when", "who", "token", "action", "target", "detail", box=None)
    for event in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["at"]))
        table.add_row(when, event["actor"] or "", str(event["token_id"] or ""), event["action"], event["target"],
                      event["detail"])
    out.print(table)


# --- web sign-in passwords -------------------------------------------------------------------------------------------
@users_app.command("passwd")
def users_passwd(name: str, server: ServerOpt = None) -> None:
    """Set NAME's password for the web sign-in (admins: anyone's; a user: their own). Asked twice without echo, or
    read from one line of stdin; never taken as an argument, where ps and the shell's history would show it."""
    password = _new_password()
    api = client(server)
    api.call("PUT", f"/api/users/{name}/password", json={"password": password})
    out.print(f"password set for {name}; sign in at {api.server}/login", highlight=False)


def _new_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise SpacesError("the two passwords differ", hint="run it again and type the same password twice")
    return first
