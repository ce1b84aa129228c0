"""An app's own origin, in real Chromium against a real `spaces serve`: an app written to attack its visitor, opened
by a signed-in admin, cannot use the admin's session (delete another space, create a token, read a page's CSRF
token) — neither inside the platform's app page nor through the old path-form link, which a browser is sent away
from; a private app opens for its member through a pass that only its own host ever holds; API clients keep the
path form unchanged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browsing import new_context
from polling import wait_until

from spaces_harness import Platform, write_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect  # CI turns this skip into a failure

VICTIM = "victim/target"
SECRET_APP = "victim/secret"
EVIL = "mallory/evil"
# Everything an app's script could try with a visitor's credentials: each attempt's outcome lands in window.report.
ATTACK = """<h1 id="app">free prizes</h1>
<script>
const P = "{platform}";
const report = window.report = {{}};
const attempt = async (name, fn) => {{
  try {{ report[name] = String(await fn()); }} catch (e) {{ report[name] = "refused: " + e.name; }}
}};
const csrfIn = (html) => (html.match(/name="csrf-token" content="([^"]+)"/) || [])[1];
(async () => {{
  // the platform page that frames this app, and its CSRF token
  await attempt("parent_csrf", () => parent === window ? "not framed"
    : csrfIn(parent.document.documentElement.outerHTML) || "no token");
  // a page of the platform read with the visitor's cookies
  await attempt("read_ui", async () => {{
    const page = await (await fetch(P + "/", {{credentials: "include"}})).text();
    return csrfIn(page) ? "csrf " + csrfIn(page) : "no token";
  }});
  await attempt("delete", async () => (await fetch(P + "/api/spaces/{victim}",
    {{method: "DELETE", credentials: "include"}})).status);
  await attempt("token", async () => (await fetch(P + "/api/tokens", {{method: "POST", credentials: "include",
    headers: {{"Content-Type": "application/json"}}, body: JSON.stringify({{name: "stolen"}})}})).status);
  // a simple request needs no preflight: it goes out, the answer is opaque, and the CSRF check must stop it
  await attempt("pause", async () => (await fetch(P + "/api/spaces/{victim}/pause",
    {{method: "POST", mode: "no-cors", credentials: "include"}})).type);
  // the same paths on the app's own origin reach only the app
  await attempt("delete_here", async () => (await fetch("/api/spaces/{victim}",
    {{method: "DELETE", credentials: "include"}})).status);
  report.origin = location.origin;
  report.done = "yes";
}})();
</script>
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("app-origin")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        pages = {VICTIM: "<h1 id='app'>the victim</h1>", SECRET_APP: "<h1 id='app'>members only</h1>",
                 EVIL: ATTACK.format(platform=server.url, victim=VICTIM)}
        for space, html in pages.items():
            folder = write_app(root / space.replace("/", "-"), {
                "README.md": f"---\ntitle: {space}\nsdk: static\n---\n", "index.html": html})
            extra = ["--private"] if space == SECRET_APP else []
            server.cli("deploy", str(folder), "--name", space, *extra, check=True)
        yield server
    finally:
        server.stop()


def signed_in_admin(browser: Any, platform: Platform, origin: str = "") -> Any:
    """``origin``: where the browser opens the platform (its public host, localhost:PORT, by default here)."""
    context = new_context(browser, platform)
    page = context.new_page()
    page.goto(f"{origin}/login")
    page.locator("#token").fill(platform.token)
    page.locator("#sign-in-token").click()
    expect(page.locator("#who")).to_have_text("admin")
    return page


def tokens(platform: Platform) -> list[str]:
    answer = httpx.get(f"{platform.url}/api/tokens", headers=platform.auth, timeout=30)
    answer.raise_for_status()
    return [t["name"] for t in answer.json()]


def report_of(frame: Any) -> dict[str, str]:
    wait_until(lambda: frame.evaluate("window.report && window.report.done") == "yes", 30, "the attack to finish")
    return frame.evaluate("window.report")  # type: ignore[no-any-return]


def assert_the_attack_failed(platform: Platform, report: dict[str, str], tokens_before: list[str],
                             framed: bool) -> None:
    host = f"http://mallory-evil.localhost:{platform.port}"
    assert report["origin"] == host  # the app ran on its own origin, not the platform's
    assert report["parent_csrf"].startswith("refused") if framed else report["parent_csrf"] == "not framed"
    for attempt in ("read_ui", "delete", "token"):
        assert report[attempt].startswith("refused"), (attempt, report)
    assert report["pause"] == "opaque"  # it went out blind...
    assert report["delete_here"] in ("404", "405")  # ...and on its own origin only the app answers
    space = platform.wait_for(VICTIM)  # deleted or paused, this fails
    assert space["desired"] == "running"
    assert tokens(platform) == tokens_before


def test_an_app_opened_in_the_app_page_by_a_signed_in_admin_cannot_act_as_the_admin(browser: Any,
                                                                                    platform: Platform) -> None:
    before = tokens(platform)
    page = signed_in_admin(browser, platform)
    page.goto(f"/{EVIL}")
    frame = wait_until(lambda: next((f for f in page.frames if "mallory-evil.localhost" in f.url), None), 30,
                       "the app frame on the app's own host")
    assert_the_attack_failed(platform, report_of(frame), before, framed=True)
    expect(page.locator("#who")).to_have_text("admin")  # still signed in, nothing changed
    page.context.close()


def test_the_old_path_link_sends_the_browser_to_the_apps_own_origin_where_the_attack_fails(
        browser: Any, platform: Platform) -> None:
    before = tokens(platform)
    page = signed_in_admin(browser, platform)
    page.goto(f"{platform.url}/spaces/{EVIL}/")
    assert page.url == f"http://mallory-evil.localhost:{platform.port}/"
    assert_the_attack_failed(platform, report_of(page.main_frame), before, framed=False)
    page.context.close()


def test_api_clients_keep_the_path_form_and_it_never_becomes_a_platform_page(platform: Platform) -> None:
    answer = httpx.get(f"{platform.url}/spaces/{VICTIM}/", timeout=30)  # curl, gradio_client: Accept */*
    assert answer.status_code == 200 and "the victim" in answer.text
    assert answer.headers["content-security-policy"] == "sandbox"
    private = httpx.get(f"{platform.url}/spaces/{SECRET_APP}/", headers=platform.auth, timeout=30)
    assert private.status_code == 200 and "members only" in private.text  # a bearer token as before
    assert httpx.get(f"{platform.url}/spaces/{SECRET_APP}/", timeout=30).status_code == 404
    navigation = httpx.get(f"{platform.url}/spaces/{VICTIM}/x?y=1", timeout=30,
                           headers={"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"})
    assert navigation.status_code == 307
    assert navigation.headers["location"] == f"http://victim-target.localhost:{platform.port}/x?y=1"


def test_a_private_app_opens_for_its_member_through_a_pass_its_host_alone_holds(browser: Any,
                                                                               platform: Platform) -> None:
    public = f"http://localhost:{platform.port}"  # the platform's public host: where its app hosts send members
    page = signed_in_admin(browser, platform, public)
    page.goto(f"{public}/{SECRET_APP}")
    host = f"http://victim-secret.localhost:{platform.port}/"
    frame = wait_until(lambda: next((f for f in page.frames if f.url == host), None), 30,
                       "the private app's frame, its pass exchanged")
    frame.wait_for_selector("#app")
    assert frame.inner_text("#app") == "members only"
    cookies = {c["name"]: c for c in page.context.cookies()}
    member_pass = cookies["spaces_pass_victim_secret"]
    assert member_pass["domain"] == "victim-secret.localhost" and member_pass["httpOnly"]
    assert cookies["spaces_session"]["domain"] == "localhost"  # the platform's session stays on its origin

    # the member opens the host link directly: the app's host sends them for a pass and back
    direct = page.context.new_page()
    direct.goto(f"{host}?q=1")
    expect(direct.locator("#app")).to_have_text("members only")
    assert direct.url == f"{host}?q=1"

    stranger = new_context(browser, platform).new_page()
    assert stranger.goto(host).status == 404  # the same 404 as a space that does not exist
    link = re.sub(r"__pass=[^&]+", "__pass=forged", frame_link(page))
    answer = stranger.goto(link)
    assert answer.status == 403
    expect(stranger.locator("body")).to_contain_text("not valid")
    stranger.context.close()
    page.context.close()


def frame_link(page: Any) -> str:
    """The app frame's src as the platform rendered it (with its pass)."""
    return str(page.locator("iframe.app-frame").get_attribute("src"))
