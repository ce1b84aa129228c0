"""Browser tests: Playwright for Python driving Debian's Chromium (never a Playwright browser download) against a
real `spaces serve` with real example apps. One server and one browser for the whole session.

Without Chromium or Playwright these tests skip locally and FAIL when the env var CI is set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browsing import CHROMIUM, CHROMIUM_ARGS, GALLERY_EXAMPLES, new_context
from prerequisites import missing

from spaces_harness import Platform, serving_examples


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Platform]:
    """`spaces serve` with the gallery's examples deployed (once) and RUNNING."""
    with serving_examples(tmp_path_factory.mktemp("gallery"), GALLERY_EXAMPLES,
                          env={"SPACES_RUNNER_ENABLED": "false"}) as server:
        yield server


@pytest.fixture
def page(browser: Any, platform: Platform) -> Iterator[Any]:
    context = new_context(browser, platform)
    yield context.new_page()
    context.close()
