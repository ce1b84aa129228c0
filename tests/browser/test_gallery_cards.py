"""Gallery cards that look alike stay tellable apart and in line, in real Chromium against a real `spaces serve`:
every card shows owner/name beside its title, and a card without a description is as tall as its row, its
footer level with its neighbours'."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browsing import DESKTOP, new_context

from spaces_harness import Platform, write_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SPACES = {  # three "My App" cards, the middle one without a description
    "alice/my-app": "Counts words in a text",
    "bob/my-app": "",
    "carol/my-app": "A much longer description that takes two lines of the card to say what the app does",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("cards")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        for space_id, description in SPACES.items():
            line = f"short_description: {description}\n" if description else ""
            folder = write_app(root / space_id.replace("/", "-"), {
                "README.md": f"---\ntitle: My App\nemoji: 🧩\nsdk: static\n{line}---\n", "index.html": "hi"})
            server.cli("deploy", str(folder), "--name", space_id, check=True)
        yield server
    finally:
        server.stop()


def boxes(page: Any, selector: str) -> dict[str, dict[str, float]]:
    return page.evaluate(f"""() => Object.fromEntries([...document.querySelectorAll("li.card-item")].map(li =>
        [li.dataset.space, li.querySelector({selector!r}).getBoundingClientRect().toJSON()]))""")


def test_cards_with_the_same_title_show_whose_they_are(browser: Any, platform: Platform) -> None:
    context = new_context(browser, platform, DESKTOP)
    page = context.new_page()
    page.goto("/")
    for space_id in SPACES:
        card = page.locator(f'li.card-item[data-space="{space_id}"]')
        assert card.locator(".card-title").inner_text() == "My App"
        assert card.locator(".card-id").inner_text() == space_id
    context.close()


def test_a_card_without_a_description_keeps_the_row_aligned(browser: Any, platform: Platform) -> None:
    context = new_context(browser, platform, DESKTOP)
    page = context.new_page()
    page.goto("/")
    cards, feet, titles = boxes(page, ".card"), boxes(page, ".card-foot"), boxes(page, ".card-title")
    assert len({round(box["top"]) for box in cards.values()}) == 1, "the three cards share one row at this width"
    assert len({round(box["height"]) for box in cards.values()}) == 1, cards  # as tall as the row
    assert len({round(box["bottom"]) for box in feet.values()}) == 1, feet  # footers level
    assert len({round(box["top"]) for box in titles.values()}) == 1, titles  # titles level
    context.close()
