"""README keys that change an app's responses, through a real `spaces serve` and its gateway: `custom_headers`
(Hugging Face's cross-origin isolation trio) and `disable_embedding` (a frame-ancestors policy), on every HTTP
response of a real Gradio app and a static site, through both link forms; the app's own headers stay."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from spaces_harness import Platform, write_app

pytestmark = pytest.mark.slow

ISOLATION = {"cross-origin-embedder-policy": "require-corp", "cross-origin-opener-policy": "same-origin",
             "cross-origin-resource-policy": "cross-origin"}
FRAME_POLICY = "frame-ancestors 'self'"
FRONT_MATTER_KEYS = """custom_headers:
  Cross-Origin-Embedder-Policy: require-corp
  cross-origin-opener-policy: same-origin
  cross-origin-resource-policy: cross-origin
  x-not-allowed: applied-nowhere
disable_embedding: true
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("headers")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        gradio = write_app(root / "isolated", {
            "README.md": f"---\ntitle: Isolated\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n"
                         f"{FRONT_MATTER_KEYS}---\n",
            "app.py": "import gradio as gr\n"
                      "gr.Interface(lambda s: s.upper(), 'text', 'text', api_name='shout').launch()\n",
        })
        site = write_app(root / "site", {
            "README.md": f"---\ntitle: Site\nsdk: static\n{FRONT_MATTER_KEYS}---\n",
            "index.html": '<!doctype html><link rel="stylesheet" href="style.css"><h1>site</h1>\n',
            "style.css": "h1 { color: teal; }\n",
        })
        plain = write_app(root / "plain", {"README.md": "---\ntitle: Plain\nsdk: static\n---\n",
                                            "index.html": "<h1>plain</h1>\n"})
        for folder, name in ((gradio, "alice/isolated"), (site, "alice/site"), (plain, "alice/plain")):
            server.cli("deploy", str(folder), "--name", name, check=True)
        yield server
    finally:
        server.stop()


def get(platform: Platform, space: str, path: str, form: str) -> httpx.Response:
    """``path`` of ``space`` through the path link or the host link (same gateway, Host header decides)."""
    owner, name = space.split("/")
    if form == "path":
        return httpx.get(f"{platform.url}/spaces/{owner}/{name}{path}", timeout=30)
    return httpx.get(f"{platform.url}{path}", headers={"Host": f"{owner}-{name}.localhost:{platform.port}"},
                     timeout=30)


def assert_applied(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text[:300]
    assert {k: response.headers.get(k) for k in ISOLATION} == ISOLATION
    # the app page frames the app's own origin: the policy names the platform's origins besides the app's
    policies = response.headers.get_list("content-security-policy")
    assert any(p.startswith(FRAME_POLICY) and "http://localhost:" in p for p in policies), policies
    assert "x-not-allowed" not in response.headers  # Hugging Face applies only the three cross-origin headers


@pytest.mark.parametrize("form", ["path", "host"])
def test_a_gradio_apps_page_and_api_answers_carry_the_readme_headers(platform: Platform, form: str) -> None:
    page = get(platform, "alice/isolated", "/", form)
    assert_applied(page)
    assert page.headers["content-type"].startswith("text/html") and "gradio" in page.text.lower()
    config = get(platform, "alice/isolated", "/config", form)
    assert_applied(config)
    assert config.headers["content-type"] == "application/json" and "components" in config.json()


@pytest.mark.parametrize("form", ["path", "host"])
def test_a_static_sites_files_carry_the_readme_headers_and_keep_their_own(platform: Platform, form: str) -> None:
    index = get(platform, "alice/site", "/", form)
    assert_applied(index)
    assert index.headers["content-type"].startswith("text/html") and "<h1>site</h1>" in index.text
    css = get(platform, "alice/site", "/style.css", form)
    assert_applied(css)
    assert css.headers["content-type"].startswith("text/css") and "etag" in css.headers


@pytest.mark.parametrize("form", ["path", "host"])
def test_an_app_without_the_keys_gets_no_added_headers(platform: Platform, form: str) -> None:
    response = get(platform, "alice/plain", "/", form)
    assert response.status_code == 200 and "<h1>plain</h1>" in response.text
    assert not any(k in response.headers for k in ISOLATION)
    # on the path form an answer never becomes a page of the platform's origin (browsers are sent to the host form)
    expected = ["sandbox"] if form == "path" else []
    assert response.headers.get_list("content-security-policy") == expected
