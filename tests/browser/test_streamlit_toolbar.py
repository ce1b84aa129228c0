"""A hosted Streamlit app shows its visitors Streamlit's viewer menu, not the author's "Deploy" button (which
Streamlit's default shows to anyone on localhost), in real Chromium through the gateway, both link forms."""

from __future__ import annotations

from typing import Any

import pytest

from spaces_harness import Platform

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect  # CI turns this skip into a failure


@pytest.mark.parametrize("form", ["path", "host"])
def test_the_streamlit_app_has_no_deploy_button(page: Any, platform: Platform, form: str) -> None:
    link = {"path": platform.example_url("data-explorer"),
            "host": f"http://examples-data-explorer.localhost:{platform.port}/"}[form]
    page.goto(link)
    expect(page.get_by_text("Points plotted: 100")).to_be_visible(timeout=30_000)  # the script ran
    expect(page.get_by_test_id("stMainMenu")).to_be_visible()  # the toolbar rendered, with the viewer's menu
    expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
