"""The gallery and app pages in a real browser, against a real `spaces serve` running real Gradio and Streamlit
apps: what a visitor sees and does, from scanning cards to using an app in place and sharing its link."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from browsing import DESKTOP, PHONE, new_context, publish_screenshots, screenshot
from polling import wait_until

from spaces_harness import EXAMPLES, REPO, Platform, copy_app, write_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect  # CI turns this skip into a failure


def card(page: Any, space_id: str) -> Any:
    return page.locator(f'li.card-item[data-space="{space_id}"]')


def card_order(page: Any) -> list[str]:
    return page.locator("li.card-item").evaluate_all("items => items.map(li => li.dataset.space)")


def like_as_stranger(platform: Platform, space_id: str) -> None:
    """A like from another browser (a fresh liker cookie each call)."""
    with httpx.Client(base_url=platform.url) as client:
        client.post(f"/api/spaces/{space_id}/like", json={"liked": True}).raise_for_status()


def test_gallery_lists_the_deployed_examples_with_live_badges(browser: Any, platform: Platform) -> None:
    for viewport, scheme, name in ((DESKTOP, "light", "gallery-desktop"), (PHONE, "light", "gallery-phone"),
                                   (DESKTOP, "dark", "gallery-dark")):
        context = new_context(browser, platform, viewport, color_scheme=scheme)
        page = context.new_page()
        page.goto("/")
        for example in ("sentiment", "data-explorer"):
            item = card(page, f"examples/{example}")
            expect(item).to_be_visible()
            expect(item.locator("[data-badge]")).to_have_text("Running")
        expect(card(page, "examples/sentiment")).to_contain_text("Sentiment and Text Stats")
        expect(card(page, "examples/sentiment")).to_contain_text("gradio")
        expect(card(page, "examples/data-explorer")).to_contain_text("streamlit")
        assert card_order(page)[0] == "examples/sentiment"  # pinned apps lead
        screenshot(page, name)
        context.close()


def test_search_narrows_the_cards(page: Any) -> None:
    page.goto("/")
    expect(page.locator("li.card-item")).to_have_count(2)
    search = page.get_by_role("searchbox")
    search.fill("csv")  # only in the data explorer's description
    expect(page.locator("li.card-item")).to_have_count(1)
    expect(card(page, "examples/data-explorer")).to_be_visible()
    search.fill("sentiment-analysis")  # a tag
    expect(page.locator("li.card-item")).to_have_count(1)
    expect(card(page, "examples/sentiment")).to_be_visible()
    search.fill("no such app anywhere")
    expect(page.locator("li.card-item")).to_have_count(0)
    expect(page.locator("#no-match")).to_contain_text("No apps match")
    assert "q=no+such+app" in page.url  # the search is a link one can share
    search.fill("")
    page.get_by_label("SDK").select_option("streamlit")
    expect(page.locator("li.card-item")).to_have_count(1)
    expect(card(page, "examples/data-explorer")).to_be_visible()


def test_sorting_reorders_the_cards(page: Any, platform: Platform) -> None:
    for _ in range(3):  # more likes than any other test gives the sentiment app
        like_as_stranger(platform, "examples/data-explorer")
    page.goto("/")
    assert card_order(page)[:2] == ["examples/sentiment", "examples/data-explorer"]  # trending: pinned first
    page.get_by_label("Sort").select_option("likes")
    expect(page.locator("li.card-item").first).to_have_attribute("data-space", "examples/data-explorer")
    expect(card(page, "examples/data-explorer").locator("[data-likes]")).to_have_text("3")
    page.get_by_label("Sort").select_option("created")  # examples deploy in name order: sentiment is newer
    expect(page.locator("li.card-item").first).to_have_attribute("data-space", "examples/sentiment")
    assert "sort=created" in page.url


def test_a_card_opens_the_app_page_and_the_gradio_app_works_in_place(browser: Any, platform: Platform) -> None:
    context = new_context(browser, platform)
    page = context.new_page()
    page.goto("/")
    card(page, "examples/sentiment").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/examples/sentiment$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sentiment and Text Stats")
    expect(page.locator("#stage")).to_have_text("Running")
    app = page.frame_locator("iframe.app-frame")
    app.get_by_label("Text").fill("I love this wonderful, great product!")
    app.get_by_role("button", name="Submit").click()
    expect(app.get_by_test_id("label-output-value")).to_have_text("positive", timeout=30_000)
    screenshot(page, "app-page-desktop")
    page.get_by_role("tab", name="Run log").click()
    expect(page.locator('pre[data-log="run"]')).not_to_be_empty()
    page.get_by_role("tab", name="Build log").press("ArrowLeft")  # keyboard moves between tabs
    expect(page.get_by_role("tab", name="App")).to_be_focused()
    expect(page.get_by_role("tab", name="App")).to_have_attribute("aria-selected", "true")
    context.close()

    phone = new_context(browser, platform, PHONE)
    page = phone.new_page()
    page.goto("/examples/sentiment")
    expect(page.frame_locator("iframe.app-frame").get_by_role("button", name="Submit")).to_be_visible()
    screenshot(page, "app-page-phone")
    phone.close()
    publish_screenshots(["gallery-desktop", "gallery-phone", "gallery-dark", "app-page-desktop", "app-page-phone"])


def test_the_streamlit_app_reacts_to_an_input(page: Any) -> None:
    page.goto("/examples/data-explorer")
    app = page.frame_locator("iframe.app-frame")
    expect(app.get_by_text("Points plotted: 100")).to_be_visible(timeout=30_000)
    app.get_by_role("slider", name="Number of points").focus()
    page.keyboard.press("ArrowRight")
    expect(app.get_by_text("Points plotted: 110")).to_be_visible(timeout=30_000)


def test_a_like_counts_once_and_persists_across_reloads(page: Any) -> None:
    page.goto("/examples/sentiment")
    like = page.locator("#like")
    before = int(page.locator("#likes").inner_text())
    expect(like).to_have_attribute("aria-pressed", "false")
    like.click()
    expect(like).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#likes")).to_have_text(str(before + 1))
    page.reload()
    expect(like).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#likes")).to_have_text(str(before + 1))
    page.goto("/")
    expect(card(page, "examples/sentiment").locator("[data-likes]")).to_have_text(str(before + 1))


def test_share_copies_the_public_link_and_the_link_opens_the_app_alone(page: Any, platform: Platform) -> None:
    page.goto("/examples/sentiment")
    page.get_by_role("button", name="Share").click()
    expect(page.locator(".toast")).to_contain_text("Link copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"http://examples-sentiment.localhost:{platform.port}/"  # the app's own origin (the host link)
    alone = page.context.new_page()
    alone.goto(link)
    expect(alone.get_by_role("button", name="Submit")).to_be_visible(timeout=30_000)
    expect(alone.locator("#space")).to_have_count(0)  # the app itself, not the platform's page around it
    alone.close()
    page.get_by_role("button", name="Embed").click()
    expect(page.locator("#embed-snippet")).to_have_value(re.compile(re.escape(f'<iframe src="{link}"')))
    page.keyboard.press("Escape")
    expect(page.locator("#embed-dialog")).not_to_be_visible()


def deploy(platform: Platform, folder: Path, space_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "spaces_runtime.cli", "deploy", str(folder), "--name", space_id,
                             "--server", platform.url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=platform.cli_env())  # as the platform's user: its admin token


def test_a_new_app_appears_and_its_badge_moves_to_running_without_a_reload(
        page: Any, platform: Platform, tmp_path: Path) -> None:
    folder = copy_app(EXAMPLES / "sentiment", tmp_path / "fresh")
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("title: Sentiment and Text Stats", "title: Fresh Mood")
                      .replace("pinned: true", "pinned: false"))
    (folder / "requirements.txt").write_text("pyyaml\n")  # a new environment: a real (cached) uv build to watch
    page.goto("/")
    page.evaluate("window.__sameDocument = true")
    page.evaluate("""() => {
        window.__badges = [];
        new MutationObserver(() => {
            const badge = document.querySelector('li.card-item[data-space="alice/fresh"] [data-badge]');
            const text = badge && badge.textContent.trim();
            if (text && window.__badges[window.__badges.length - 1] !== text) window.__badges.push(text);
        }).observe(document.getElementById("listing"), {subtree: true, childList: true, characterData: true});
    }""")
    process = deploy(platform, folder, "alice/fresh")
    try:
        expect(card(page, "alice/fresh")).to_be_visible(timeout=30_000)
        expect(card(page, "alice/fresh").locator("[data-badge]")).to_have_text("Running", timeout=180_000)
        assert process.wait(180) == 0, process.stdout.read() if process.stdout else ""
    finally:
        process.kill()
    seen = page.evaluate("window.__badges")
    assert seen[0] == "Building" and seen[-1] == "Running", seen
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    expect(card(page, "alice/fresh")).to_contain_text("Fresh Mood")


def test_an_app_page_shows_progress_while_building_then_the_app(page: Any, platform: Platform,
                                                                tmp_path: Path) -> None:
    folder = copy_app(EXAMPLES / "sentiment", tmp_path / "slowstart")
    app_py = folder / "app.py"
    app_py.write_text("import time\nprint('warming up the lexicon', flush=True)\ntime.sleep(6)\n" + app_py.read_text())
    process = deploy(platform, folder, "alice/slowstart")
    try:
        wait_until(lambda: httpx.get(f"{platform.url}/api/spaces/alice/slowstart").status_code == 200, 30,
                   "the deploy to register the space", interval=0.1)
        page.goto("/alice/slowstart")
        expect(page.locator(".progress")).to_be_visible()  # never a blank frame
        expect(page.locator("[data-live-log]")).to_contain_text("warming up the lexicon", timeout=60_000)
        expect(page.frame_locator("iframe.app-frame").get_by_role("button", name="Submit")).to_be_visible(
            timeout=120_000)
        expect(page.locator("#stage")).to_have_text("Running")
        assert process.wait(60) == 0
    finally:
        process.kill()


@pytest.mark.parametrize(("files", "stage", "message"), [
    ({"app.py": "import gradio as gr\nraise RuntimeError('OPENAI_KEY is not set: add it as a secret')\n"},
     "Runtime error", "OPENAI_KEY is not set"),
    ({"app.py": "import gradio as gr\n", "requirements.txt": "surely-not-a-real-package-4242==1.0\n"},
     "Build error", "surely-not-a-real-package-4242"),
], ids=["runtime-error", "build-error"])
def test_a_failing_app_shows_its_error_on_its_page(page: Any, platform: Platform, tmp_path: Path,
                                                   files: dict[str, str], stage: str, message: str) -> None:
    readme = "---\ntitle: Broken\nemoji: 💥\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n---\n"
    folder = write_app(tmp_path / "broken", {"README.md": readme, **files})
    name = f"alice/broken-{stage.split()[0].lower()}"
    process = deploy(platform, folder, name)
    page.goto("/")
    page.evaluate("window.__sameDocument = true")
    expect(card(page, name).locator("[data-badge]")).to_have_text(stage, timeout=180_000)
    assert process.wait(60) != 0  # the CLI says it failed too
    assert page.evaluate("window.__sameDocument") is True
    card(page, name).get_by_role("link").click()
    expect(page.locator(".error-panel")).to_be_visible()
    expect(page.locator(".error-panel")).to_contain_text(message)
    expect(page.locator(".error-panel mark.err-line").first).to_be_visible()  # the first error line stands out
    expect(page.locator(".progress")).to_have_count(0)  # never a spinner forever
    if stage == "Runtime error":
        screenshot(page, "app-page-error")
        publish_screenshots(["app-page-error"])

