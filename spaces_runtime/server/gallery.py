"""The gallery at `/` and each app's page at `/{owner}/{name}`: server-rendered Jinja2, small dependency-free JS.

Choosing, ordering and paging the cards are pure functions (``select``, ``page_of``); the routes read the store
through the same ``space_view`` the REST API answers with, and show only what the viewer may see: a private space
is absent from every list and a 404 page to everyone else, as on the REST API. Assets live in
templates/gallery/static and are served from ``/_platform/static/`` so the pages work air-gapped.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.staticfiles import StaticFiles

from spaces_runtime.auth import rules
from spaces_runtime.auth.passes import PASS_PARAM
from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.config import templates_dir
from spaces_runtime.errors import NotFoundError, SpacesError
from spaces_runtime.gateway.access import on_public_host
from spaces_runtime.names import RESERVED_OWNERS
from spaces_runtime.names import space_id as make_space_id
from spaces_runtime.server.api import liker_of
from spaces_runtime.server.auth import credentials
from spaces_runtime.server.views import space_view
from spaces_runtime.store import SpaceRecord
from spaces_runtime.supervisor.process import space_pss

PAGE_SIZE = 24
STATIC_PREFIX = "/_platform/static"
SortKey = Literal["trending", "likes", "created", "updated"]
SORTS: dict[str, str] = {"trending": "Trending", "likes": "Most likes", "created": "Recently created",
                         "updated": "Recently updated"}
SDKS = ("gradio", "streamlit", "docker", "static")
SERVING = frozenset({"RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
# Hugging Face's colorFrom/colorTo names, as the Tailwind 500 shades its cards use.
COLORS = {"red": "#ef4444", "yellow": "#eab308", "green": "#22c55e", "blue": "#3b82f6", "indigo": "#6366f1",
          "purple": "#a855f7", "pink": "#ec4899", "gray": "#6b7280", "orange": "#f97316", "teal": "#14b8a6"}
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")
STAGE_LABELS = {
    "RUNNING": "Running", "RUNNING_BUILDING": "Running · building", "RUNNING_APP_STARTING": "Running · restarting",
    "BUILDING": "Building", "APP_STARTING": "Starting", "SLEEPING": "Sleeping", "PAUSED": "Paused",
    "STOPPED": "Stopped", "DELETING": "Deleting", "BUILD_ERROR": "Build error", "RUNTIME_ERROR": "Runtime error",
    "CONFIG_ERROR": "Config error", "NO_APP_FILE": "No app file",
}
ERROR_LINE = re.compile(r"\b(error|exception|traceback|failed|fatal)\b", re.IGNORECASE)
LOG_TAIL_LINES = 40


# --- pure decisions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Listing:
    """What the gallery's toolbar asks for."""

    q: str = ""
    sort: SortKey = "trending"
    sdk: str = ""
    running: bool = False
    page: int = 1
    owner: str = ""  # one namespace only: "my spaces", an organization's

    def params(self, **changes: Any) -> str:
        """The query string for this listing (defaults left out), with ``changes`` applied."""
        wanted = replace(self, **changes)
        pairs = {"q": wanted.q, "sort": "" if wanted.sort == "trending" else wanted.sort, "sdk": wanted.sdk,
                 "running": "1" if wanted.running else "", "owner": wanted.owner,
                 "page": "" if wanted.page == 1 else str(wanted.page)}
        return urlencode({k: v for k, v in pairs.items() if v})


def make_listing(q: str = "", sort: str = "trending", sdk: str = "", running: str = "", page: int = 1,
                 owner: str = "") -> Listing:
    """Tolerant parsing: an unknown sort or sdk falls back to the default rather than failing the page."""
    return Listing(q=q.strip()[:200], sort=sort if sort in SORTS else "trending",  # type: ignore[arg-type]
                   sdk=sdk if sdk in SDKS else "", running=running not in ("", "0", "false"), page=max(1, page),
                   owner=owner.strip()[:100])


def matches(space: dict[str, Any], words: list[str]) -> bool:
    """Every word appears in the title, description, tags, owner or name (case-insensitive)."""
    haystack = " ".join([space["title"], space["short_description"], space["owner"], space["name"],
                         *map(str, space["tags"])]).lower()
    return all(word in haystack for word in words)


def order_key(space: dict[str, Any], sort: SortKey) -> tuple[Any, ...]:
    if sort == "likes":
        return (-space["likes"], -space["updated_at"])
    if sort == "created":
        return (-space["created_at"],)
    if sort == "updated":
        return (-space["updated_at"],)
    # the default view: pinned apps lead, then what people liked and visited lately
    return (not space["pinned"], -space["trending_score"], -space["likes"], -space["updated_at"])


def select(spaces: list[dict[str, Any]], listing: Listing) -> list[dict[str, Any]]:
    words = listing.q.lower().split()
    chosen = [s for s in spaces if matches(s, words)
              and (not listing.owner or s["owner"] == listing.owner)
              and (not listing.sdk or s["sdk"] == listing.sdk)
              and (not listing.running or s["stage"] in SERVING)]
    return sorted(chosen, key=lambda s: order_key(s, listing.sort))


def page_of(spaces: list[dict[str, Any]], page: int, size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], bool]:
    """The cards of ``page`` (1-based) and whether more follow."""
    start = (page - 1) * size
    return spaces[start:start + size], len(spaces) > start + size


def gradient(color_from: Any, color_to: Any) -> str:
    """A CSS gradient from two card colours; anything but a known name or a hex colour falls back (no injection)."""
    def pick(value: Any, fallback: str) -> str:
        text = str(value or "").strip().lower()
        return COLORS.get(text) or (text if HEX_COLOR.fullmatch(text) else COLORS[fallback])
    return f"linear-gradient(135deg, {pick(color_from, 'blue')}, {pick(color_to, 'indigo')})"


def stage_tone(stage: str) -> str:
    """The badge colour class: ok, busy, idle or error."""
    if stage in ("RUNNING",):
        return "ok"
    if stage in ("BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING", "DELETING"):
        return "busy"
    if stage in ("BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"):
        return "error"
    return "idle"


def ago(ts: float, now: float | None = None) -> str:
    seconds = max(0.0, (now if now is not None else time.time()) - ts)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = math.floor(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def log_context(tail: list[str], error_lines: list[str]) -> list[str]:
    """The log's last lines without those the error panel already shows above them: the failing output that the
    error carries, and the log's own ERROR line for it. Each error shows once; what led up to it stays."""
    shown = set(error_lines) | {f"ERROR: {error_lines[0]}"} if error_lines else set()
    context = [line for line in tail if line not in shown]
    return context if any(line.strip() for line in context) else []


def first_error(lines: list[str]) -> int | None:
    """Index of the first line that reads like an error (the log tabs highlight it)."""
    return next((i for i, line in enumerate(lines) if ERROR_LINE.search(line)), None)


# --- rendering ----------------------------------------------------------------------------------------------
def _static_root() -> Path:
    return templates_dir() / "gallery" / "static"


_jinja = Environment(loader=FileSystemLoader(templates_dir() / "gallery"), autoescape=select_autoescape(
    default=True, default_for_string=True))
_jinja.globals.update(gradient=gradient, stage_tone=stage_tone, stage_label=lambda s: STAGE_LABELS.get(s, s),
                      ago=ago, sorts=SORTS, sdks=SDKS, static=STATIC_PREFIX, first_error=first_error)
router = APIRouter(include_in_schema=False)


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_jinja.get_template(name).render(**context), status_code=status_code)


# --- who is looking ----------------------------------------------------------------------------------------
def viewer(request: Request) -> Principal:
    """Who is looking at a page. Pages are reads: a stale or bad credential shows the public view, not an error."""
    try:
        return request.app.state.platform.auth.principal(credentials(request))
    except SpacesError:
        return ANONYMOUS


def chrome(request: Request, who: Principal) -> dict[str, Any]:
    """What every page's header needs: who is signed in, their organizations, and, for a signed-in browser, the
    CSRF token its scripts send with every write (in a <meta> tag: another site can make the browser send the
    cookie, never read this page)."""
    csrf = request.app.state.platform.auth.session_csrf(credentials(request)) if who.via == "session" else None
    return {"me": who.name, "my_orgs": sorted(who.orgs), "csrf": csrf, "signed_in_browser": csrf is not None,
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else "")}


def page(request: Request, name: str, who: Principal | None = None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """A whole page (with the header of the signed-in viewer); never kept by a shared cache."""
    who = who or viewer(request)
    response = render(name, status_code, **{**chrome(request, who), **context})
    response.headers["Cache-Control"] = "no-store" if who.name else "no-cache"
    return response


def may_see(who: Principal, record: SpaceRecord) -> bool:
    return rules.may_see(who, record.id, record.private)


def all_spaces(request: Request, who: Principal) -> list[dict[str, Any]]:
    p = request.app.state.platform
    return [space_view(r, p.settings.public_link_host) for r in p.store.spaces() if may_see(who, r)]


def listing_context(request: Request, listing: Listing, through_page: bool = False,
                    who: Principal = ANONYMOUS) -> dict[str, Any]:
    """Cards for the listing; ``through_page`` returns every card up to its page (a refresh after a new app)."""
    spaces = all_spaces(request, who)
    chosen = select(spaces, listing)
    if through_page:
        cards, more = page_of(chosen, 1, PAGE_SIZE * listing.page)
    else:
        cards, more = page_of(chosen, listing.page)
    return {"cards": cards, "more": more, "listing": listing, "total": len(chosen), "any_spaces": bool(spaces),
            "next_params": listing.params(page=listing.page + 1)}


@router.get("/", response_class=HTMLResponse)
def index(request: Request, q: str = "", sort: str = "trending", sdk: str = "", running: str = "",
          page_number: int = Query(1, ge=1, alias="page"), owner: str = "") -> HTMLResponse:
    who = viewer(request)
    listing = make_listing(q, sort, sdk, running, page_number, owner)
    # a no-JS "load more" link lands here with page=N: show everything up to it
    context = listing_context(request, listing, through_page=True, who=who)
    return page(request, "index.html", who, **context, server=str(request.base_url).rstrip("/"))


@router.get("/_platform/cards", response_class=HTMLResponse)
def cards(request: Request, q: str = "", sort: str = "trending", sdk: str = "", running: str = "",
          page_number: int = Query(1, ge=1, alias="page"), through: int = 0, owner: str = "") -> HTMLResponse:
    """The card grid as an HTML fragment: the toolbar's live search and the lazy loader fetch it."""
    listing = make_listing(q, sort, sdk, running, page_number, owner)
    context = listing_context(request, listing, through_page=bool(through), who=viewer(request))
    return render("_cards.html", **context, fragment_only=not through and page_number > 1)


@router.get("/_platform/card/{owner}/{name}", response_class=HTMLResponse)
def card(owner: str, name: str, request: Request) -> HTMLResponse:
    space = find_space(request, owner, name, viewer(request))
    if space is None:
        raise NotFoundError(f"no space named {owner}/{name}")
    return render("_card.html", s=space)


class _Assets(StaticFiles):
    """The gallery's CSS, JS and icons; a browser may keep them five minutes (they change only with the platform).
    StaticFiles refuses paths outside its folder and answers a revalidation (If-None-Match) with 304."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response


router.mount(STATIC_PREFIX, _Assets(directory=_static_root()), name="static")


def panel_mode(stage: str) -> str:
    """What the app tab shows: the app, build/start progress, the error, or a stopped notice."""
    if stage in SERVING or stage == "SLEEPING":  # a sleeping app wakes when its frame asks for it
        return "frame"
    if stage in ("BUILDING", "APP_STARTING"):
        return "progress"
    if stage in ("BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"):
        return "error"
    return "idle"


def find_record(request: Request, owner: str, name: str, who: Principal) -> SpaceRecord | None:
    """The space if ``who`` may see it; None for no such space and for a private one of others alike."""
    p = request.app.state.platform
    try:
        record = None if owner in RESERVED_OWNERS else p.store.find(make_space_id(owner, name))
    except SpacesError:
        return None
    return record if record is not None and may_see(who, record) else None


def find_space(request: Request, owner: str, name: str, who: Principal) -> dict[str, Any] | None:
    record = find_record(request, owner, name, who)
    return None if record is None else space_view(record, request.app.state.platform.settings.public_link_host)


def host_links(request: Request) -> bool:
    """Whether this browser opens apps on their own hosts (gateway/access.py: it came by the public host)."""
    settings = request.app.state.platform.settings
    return settings.host_links_available and on_public_host(request.headers.get("host", ""),
                                                            settings.public_link_host)


def app_link(request: Request, space: dict[str, Any], who: Principal, rest: str = "/") -> str:
    """Where a browser opens the app: its own origin (the host form) when host links resolve, so its script never
    runs beside the platform's pages; a private app's link carries a pass for this member (auth/passes.py)."""
    p = request.app.state.platform
    if not host_links(request):
        return f"/spaces/{space['id']}{rest}"
    link = space["host_url"].rstrip("/") + rest
    token = p.auth.issue_pass(who.name, space["id"]) if space["private"] and who.name else None
    return link + ("&" if "?" in link else "?") + urlencode({PASS_PARAM: token}) if token else link


def panel_context(request: Request, space: dict[str, Any], who: Principal) -> dict[str, Any]:
    kind = "run" if space["stage"] == "RUNTIME_ERROR" else "build"
    logs = request.app.state.platform.logs
    tail = logs.tail(space["id"], kind, LOG_TAIL_LINES).splitlines() if space["is_error"] else []
    error_lines = (space["error"] or "The app stopped with an error.").splitlines()
    tail = log_context(tail, error_lines)
    return {"s": space, "mode": panel_mode(space["stage"]), "tail": tail, "tail_kind": kind,
            "error_lines": error_lines,
            "frame_src": app_link(request, space, who)}


@router.get("/_platform/panel/{owner}/{name}", response_class=HTMLResponse)
def panel(owner: str, name: str, request: Request) -> HTMLResponse:
    """The app tab's content for the space's current stage (the page swaps it when the stage changes)."""
    who = viewer(request)
    space = find_space(request, owner, name, who)
    if space is None:
        raise NotFoundError(f"no space named {owner}/{name}")
    return render("_panel.html", **panel_context(request, space, who))


@router.get("/_platform/open/{owner}/{name}")
def open_app(owner: str, name: str, request: Request, rest: str = Query("/", alias="next")) -> Response:
    """Where the app's own host sends a browser it does not admit: a member gets a pass and goes back to
    ``next`` there; everyone else gets the same 404 as for a space that does not exist."""
    who = viewer(request)
    space = find_space(request, owner, name, who)
    if space is None:
        return missing(request, f"{owner}/{name}", who)
    rest = rest if rest.startswith("/") else "/"
    return RedirectResponse(app_link(request, space, who, rest), 303, headers={"Cache-Control": "no-store"})


def missing(request: Request, wanted: str, who: Principal) -> HTMLResponse:
    return page(request, "missing.html", who, status_code=404, wanted=wanted)


@router.get("/{owner}/{name}", response_class=HTMLResponse)
def app_page(owner: str, name: str, request: Request) -> HTMLResponse:
    who = viewer(request)
    space = find_space(request, owner, name, who)
    if space is None:
        return missing(request, f"{owner}/{name}", who)
    store = request.app.state.platform.store
    store.record_visit(space["id"])
    liker = liker_of(request, who)  # as the like API counts
    card = space["card"]
    return page(request, "space.html", who, **panel_context(request, space, who),
                app_url=space["host_url"] if host_links(request) else space["url"],
                memory=space_pss(request.app.state.platform.supervisor, space["id"]),
                liked=bool(liker) and store.has_liked(space["id"], liker or ""),
                may_change=rules.may_write(who, space["owner"]),
                embeddable=not card.get("disable_embedding"), full_width=bool(card.get("full_width")),
                mini_header=card.get("header") == "mini")
