"""The gallery's pages rendered by the real routers over a real SQLite store (no browser, no running apps):
the empty state, hundreds of apps paged, search and sort on the server, error pages, and safe card colours."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pages import add_space, make_app, make_platform

from spaces_runtime.server.gallery import PAGE_SIZE, ago, first_error, gradient
from spaces_runtime.stages import Stage
from spaces_runtime.wiring import Platform

CARD = re.compile(r'<li class="card-item" data-space="([^"]+)"')


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return make_platform(tmp_path / "data")


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(make_app(platform)) as test_client:
        yield test_client


def cards(html: str) -> list[str]:
    return CARD.findall(html)


def test_an_empty_platform_shows_how_to_deploy_the_first_app(client: TestClient) -> None:
    html = client.get("/").text
    assert "No apps yet" in html
    assert "spaces deploy ./my-app" in html and "spaces init my-app --sdk gradio" in html
    assert cards(html) == []


def test_hundreds_of_apps_arrive_a_page_at_a_time(platform: Platform, client: TestClient) -> None:
    for i in range(300):
        add_space(platform, f"owner{i % 7}/app-{i:03d}", short_description=f"demo number {i}")
    first = client.get("/").text
    assert len(cards(first)) == PAGE_SIZE
    assert "300 apps" in first and 'data-next="page=2"' in first
    last = client.get(f"/_platform/cards?page={300 // PAGE_SIZE + 1}").text
    assert len(cards(last)) == 300 % PAGE_SIZE and "data-next" not in last
    seen = {c for page in range(1, 14) for c in cards(client.get(f"/_platform/cards?page={page}").text)}
    assert len(seen) == 300  # every app reachable, none twice
    assert len(cards(client.get("/?page=3").text)) == 3 * PAGE_SIZE  # the no-JS "load more" link


def test_search_sort_and_filters_work_on_the_server(platform: Platform, client: TestClient) -> None:
    add_space(platform, "alice/old", title="Old Faithful", tags=["geology"])
    add_space(platform, "bob/pinned", title="Pinned Board", pinned=True, sdk="streamlit")
    add_space(platform, "carol/broken", Stage.BUILD_ERROR, error="boom", title="Broken Thing")
    platform.store.set_like("alice/old", "someone", True)
    assert cards(client.get("/").text)[0] == "bob/pinned"
    assert cards(client.get("/?sort=likes").text)[0] == "alice/old"
    assert cards(client.get("/?sort=created").text)[0] == "carol/broken"
    assert cards(client.get("/_platform/cards?q=GEOLOGY").text) == ["alice/old"]  # a tag, any case
    assert cards(client.get("/_platform/cards?q=carol").text) == ["carol/broken"]  # an owner
    assert cards(client.get("/_platform/cards?sdk=streamlit").text) == ["bob/pinned"]
    assert "carol/broken" not in cards(client.get("/_platform/cards?running=1").text)
    assert "No apps match" in client.get("/_platform/cards?q=zebra").text


def test_the_app_page_shows_a_build_error_with_its_first_error_line_marked(platform: Platform,
                                                                       client: TestClient) -> None:
    add_space(platform, "bob/broken", Stage.BUILD_ERROR, error="requirements.txt line 2: no such package 'nope'")
    platform.logs.write("bob/broken", "build", "Resolving\nerror: no solution for nope\nmore\n")
    html = client.get("/bob/broken").text
    assert "Build error" in html and "requirements.txt line 2" in html
    assert '<mark class="err-line">error: no solution for nope</mark>' in html
    assert 'class="progress"' not in html and "<iframe class" not in html


def test_embedding_and_header_keys_are_honoured(platform: Platform, client: TestClient) -> None:
    add_space(platform, "alice/private", disable_embedding=True, full_width=True, header="mini")
    add_space(platform, "alice/open")
    private = client.get("/alice/private").text
    assert 'id="embed"' not in private and 'panel-app full' in private and "space-page mini" in private
    assert 'id="embed"' in client.get("/alice/open").text
    # a browser that came by the public host sees the app on its own origin (the host form), never beside the
    # platform's pages; one that came by another name for the platform might not resolve it: the path form
    public = client.get("/alice/open", headers={"host": "localhost:7000"}).text
    assert '<iframe class="app-frame" src="http://alice-open.localhost:7000/"' in public
    assert '<iframe class="app-frame" src="/spaces/alice/open/"' in client.get("/alice/open").text  # testserver


def test_unknown_reserved_and_odd_names_get_a_friendly_404(platform: Platform, client: TestClient) -> None:
    assert client.get("/nobody/nothing").status_code == 404
    assert "No app named nobody/nothing" in client.get("/nobody/nothing").text
    assert client.get("/_platform/Bad Name").status_code == 404


def test_assets_are_served_locally_and_nothing_outside_them(client: TestClient) -> None:
    css = client.get("/_platform/static/gallery.css")
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text
    assert css.headers["cache-control"] == "public, max-age=300"  # a browser keeps them for five minutes
    assert client.get("/_platform/static/gallery.css", headers={"if-none-match": css.headers["etag"]}).status_code \
        == 304  # then revalidates without downloading them again
    assert client.get("/_platform/static/nothing.css").status_code == 404
    assert client.get("/_platform/static/../gallery.py").status_code == 404
    assert client.get("/_platform/static/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
    page = client.get("/").text
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no CDN: every asset comes from the platform


def test_visits_are_counted_by_the_app_page(platform: Platform, client: TestClient) -> None:
    add_space(platform, "alice/popular")
    for _ in range(3):
        client.get("/alice/popular")
    assert client.get("/api/spaces/alice/popular").json()["visits"] == 3


def test_card_colours_accept_names_and_hex_but_nothing_else() -> None:
    assert gradient("red", "#00ff00") == "linear-gradient(135deg, #ef4444, #00ff00)"
    assert gradient("red;} body{display:none", None) == "linear-gradient(135deg, #3b82f6, #6366f1)"


def test_first_error_line_and_relative_times() -> None:
    assert first_error(["ok", "Downloading", "ERROR: Could not find a version", "Error again"]) == 2
    assert first_error(["all good"]) is None
    assert ago(1000, now=1000) == "just now" and ago(0, now=7200) == "2 hours ago" and ago(0, now=60) == "1 minute ago"
