"""The pages the gateway answers with itself when an app cannot: starting, failed, missing (pure HTML)."""

from __future__ import annotations

from html import escape

REFRESH_S = 2

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 4rem auto; padding: 0 1rem; color: #1f2937; }}
 .stage {{ display: inline-block; padding: .15rem .6rem; border-radius: 1rem; background: #eef2ff;
          color: #3730a3; font-size: .85rem; font-weight: 600; }}
 .error .stage {{ background: #fee2e2; color: #991b1b; }}
 pre {{ background: #111827; color: #f9fafb; padding: 1rem; border-radius: .5rem; overflow-x: auto;
       white-space: pre-wrap; }}
 .spinner {{ width: 1.2rem; height: 1.2rem; border: 3px solid #c7d2fe; border-top-color: #4f46e5;
            border-radius: 50%; display: inline-block; animation: spin 1s linear infinite;
            vertical-align: middle; margin-right: .5rem; }}
 @keyframes spin {{ to {{ transform: rotate(360deg); }} }}
</style></head>
<body class="{kind}">{body}</body></html>
"""


def pending_page(space: str, stage: str, title: str, detail: str) -> str:
    """Shown while the app builds, starts or wakes; reloads itself until the app answers."""
    body = (f'<h1><span class="spinner"></span>{escape(title or space)}</h1>'
            f'<p><span class="stage">{escape(stage)}</span> {escape(detail)}</p>'
            f"<p>This page reloads every {REFRESH_S} seconds and shows the app as soon as it is up.</p>")
    return _render(f"{title or space} · {stage}", body, "pending", refresh=True)


def failed_page(space: str, stage: str, error: str) -> str:
    body = (f"<h1>{escape(space)} is not running</h1>"
            f'<p><span class="stage">{escape(stage)}</span></p>'
            f"<pre>{escape(error or 'no error message was recorded')}</pre>"
            f"<p>See the full log with <code>spaces logs {escape(space)}</code>.</p>")
    return _render(f"{space} · {stage}", body, "error")


def missing_page(space: str) -> str:
    body = (f"<h1>No app named {escape(space)}</h1>"
            f"<p>Nothing is deployed under this link. Deploy one with "
            f"<code>spaces deploy ./my-app --name {escape(space)}</code>, or open the gallery at "
            f'<a href="/">/</a>.</p>')
    return _render(f"{space} · not found", body, "error")


def share_problem_page(space: str, problem: str) -> str:
    body = (f"<h1>This link does not open {escape(space)}</h1><p>{escape(problem[:1].upper() + problem[1:])}.</p>"
            "<p>Ask whoever shared it for a new link.</p>")
    return _render(f"{space} · share link", body, "error")


def upstream_error_page(space: str, error: str) -> str:
    body = (f"<h1>{escape(space)} did not answer</h1><pre>{escape(error)}</pre>"
            f"<p>The app may be restarting; try again in a moment.</p>")
    return _render(f"{space} · bad gateway", body, "error")


def _render(title: str, body: str, kind: str, refresh: bool = False) -> str:
    meta = f'\n<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return _PAGE.format(refresh=meta, title=escape(title), body=body, kind=kind)
