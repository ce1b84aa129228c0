"""The gallery at `/`: a card per app (server-rendered with Jinja2)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from spaces_runtime.config import templates_dir
from spaces_runtime.server.views import space_view

router = APIRouter()
_jinja = Environment(loader=FileSystemLoader(templates_dir() / "gallery"), autoescape=select_autoescape())


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request) -> HTMLResponse:
    p = request.app.state.platform
    spaces = [space_view(r, p.settings.public_link_host) for r in p.store.list()]
    spaces.sort(key=lambda s: (not s["pinned"], -s["updated_at"]))
    return HTMLResponse(_jinja.get_template("index.html").render(spaces=spaces))
