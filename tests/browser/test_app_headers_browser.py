"""README keys that change what a browser lets an app do, in real Chromium against a real `spaces serve`:
`disable_embedding` stops other sites from framing the app (the platform's own app page still shows it), and
`custom_headers` with Hugging Face's isolation trio makes the app cross-origin isolated (SharedArrayBuffer)."""

from __future__ import annotations

import functools
import http.server
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import new_context
from polling import wait_until

from spaces_harness import Platform, write_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the app tells whoever frames it that it rendered
APP_PAGE = '<h1 id="app">hello</h1><script>parent.postMessage("rendered:" + location.href, "*")</script>\n'
ISOLATION = """custom_headers:
  cross-origin-embedder-policy: require-corp
  cross-origin-opener-policy: same-origin
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("embedding")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        for name, keys in (("private", "disable_embedding: true\n"), ("open", ""), ("isolated", ISOLATION)):
            folder = write_app(root / name, {"README.md": f"---\ntitle: {name}\nsdk: static\n{keys}---\n",
                                             "index.html": APP_PAGE})
            server.cli("deploy", str(folder), "--name", f"alice/{name}", check=True)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def other_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Another origin on this machine (its own port): a folder of pages and its URL."""
    root = tmp_path_factory.mktemp("other-site")
    handler = functools.partial(_QuietHandler, directory=str(root))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def frame_of(page: Any, name: str) -> Any:
    return next((f for f in page.frames if f.name == name), None)


def test_another_site_cannot_frame_an_app_with_disable_embedding(browser: Any, platform: Platform,
                                                                 other_site: tuple[Path, str]) -> None:
    folder, origin = other_site
    host_link = f"http://alice-private.localhost:{platform.port}/"
    (folder / "embeds.html").write_text(
        '<script>window.rendered = []; addEventListener("message", e => rendered.push(e.data))</script>\n'
        f'<iframe name="private-path" src="{platform.url}/spaces/alice/private/"></iframe>\n'
        f'<iframe name="private-host" src="{host_link}"></iframe>\n'
        f'<iframe name="open" src="{platform.url}/spaces/alice/open/"></iframe>\n')
    context = new_context(browser, platform)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text) if "frame-ancestors" in message.text else None)
    page.goto(f"{origin}/embeds.html")
    # the embeddable app renders inside the other site (on its own origin, where the path link sends a browser)
    page.wait_for_function("window.rendered.some(m => m.includes('alice-open.localhost'))")
    # both links of the app that disabled embedding are refused by the browser, which says why
    wait_until(lambda: len(blocked) >= 2, 30, "Chromium to refuse both frames of alice/private")
    for name in ("private-path", "private-host"):
        wait_until(lambda n=name: frame_of(page, n).url.startswith("chrome-error:"), 30, f"{name} to be refused")
    assert not any("alice/private" in m or "alice-private" in m for m in page.evaluate("window.rendered"))
    context.close()


def test_the_platforms_own_app_page_still_shows_an_app_with_disable_embedding(browser: Any,
                                                                             platform: Platform) -> None:
    context = new_context(browser, platform)
    page = context.new_page()
    page.goto("/alice/private")
    host_link = f"http://alice-private.localhost:{platform.port}/"  # the app's own origin, which names the page's
    frame = wait_until(lambda: next((f for f in page.frames if f.url == host_link), None), 30, "the app page's frame")
    frame.wait_for_selector("#app")
    assert frame.inner_text("#app") == "hello"
    assert page.locator("#embed").count() == 0  # and it offers no embed snippet
    context.close()


@pytest.mark.parametrize("form", ["path", "host"])
def test_custom_headers_make_the_app_cross_origin_isolated(browser: Any, platform: Platform, form: str) -> None:
    context = new_context(browser, platform)
    page = context.new_page()
    link = {"path": f"{platform.url}/spaces/alice/{{}}/", "host": f"http://alice-{{}}.localhost:{platform.port}/"}
    page.goto(link[form].format("isolated"))
    assert page.inner_text("#app") == "hello"
    assert page.evaluate("window.crossOriginIsolated && typeof SharedArrayBuffer === 'function'") is True
    page.goto(link[form].format("open"))
    assert page.evaluate("window.crossOriginIsolated") is False
    context.close()
