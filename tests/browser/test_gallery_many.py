"""Hundreds of apps in a real browser: the gallery loads more cards as one scrolls, and search stays on the server.
The pages run on the real routers and store in a uvicorn thread; no apps need to run for this."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from browsing import DESKTOP
from pages import add_space, make_app, make_platform
from polling import wait_until

from spaces_harness import free_port
from spaces_runtime.server.gallery import PAGE_SIZE

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect  # CI turns this skip into a failure


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    platform = make_platform(tmp_path_factory.mktemp("many") / "data")
    for i in range(240):
        add_space(platform, f"team{i % 5}/demo-{i:03d}", title=f"Demo {i:03d}", short_description=f"app number {i}")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(platform), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 20, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_scrolling_loads_more_cards_and_search_still_finds_any_app(browser: Any, many: str) -> None:
    context = browser.new_context(viewport=DESKTOP, base_url=many)
    page = context.new_page()
    page.goto("/")
    expect(page.locator("#count")).to_have_text("240 apps")
    expect(page.locator("li.card-item")).to_have_count(PAGE_SIZE)
    page.locator(".more").scroll_into_view_if_needed()
    expect(page.locator("li.card-item")).to_have_count(2 * PAGE_SIZE)
    page.get_by_role("searchbox").fill("demo-237")  # far beyond the loaded pages
    expect(page.locator("li.card-item")).to_have_count(1)
    expect(page.locator('li.card-item[data-space="team2/demo-237"]')).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # search box → sort → sdk → running only → the card, by keyboard
    expect(page).to_have_url(f"{many}/team2/demo-237")
    context.close()
