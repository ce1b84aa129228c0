"""People in a real browser, against a real `spaces serve` running a real private Gradio app: alice signs in with
the password `spaces users passwd` set, finds her private space under "My spaces" with its badge, adds a secret
and changes visibility on the settings page, shares the private app with someone who has no account, revokes the
link, and signs out; "sign out everywhere" ends her session in another browser. A page on another origin cannot
use her session to pause or delete her spaces."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browsing import new_context, screenshot
from polling import wait_until

from spaces_harness import REPO, Platform, free_port, gradio_readme, write_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect  # CI turns this skip into a failure

PASSWORD = "a long passphrase for alice"
SECRET = "sk-test-9f3c1e77a2b44d08"
VAULT = "alice/vault"  # private Gradio app
NOTES = "alice/notes"  # public static site
APP = """import gradio as gr


def reverse(text, request: gr.Request):
    # which cookies reached the app's own server: the platform's session must never be one of them
    names = sorted(part.split("=", 1)[0].strip() for part in request.headers.get("cookie", "").split(";"))
    return text[::-1], " ".join(name for name in names if name) or "none"


gr.Interface(reverse, gr.Textbox(label="Text"), [gr.Textbox(label="Reversed"), gr.Textbox(label="Cookies")]).launch()
"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("signin")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        server.cli("users", "add", "alice", check=True)
        passwd = subprocess.run([sys.executable, "-m", "spaces_runtime.cli", "users", "passwd", "alice"],
                                input=PASSWORD + "\n", cwd=REPO, env=server.cli_env(), capture_output=True,
                                text=True, timeout=120)
        assert passwd.returncode == 0, passwd.stderr
        vault = write_app(root / "vault", {"README.md": gradio_readme("Vault"), "app.py": APP})
        server.cli("deploy", str(vault), "--name", VAULT, "--private", check=True)
        notes = write_app(root / "notes", {"README.md": "---\ntitle: Notes\nsdk: static\n---\n",
                                           "index.html": "<p>alice's notes</p>"})
        server.cli("deploy", str(notes), "--name", NOTES, check=True)
        yield server
    finally:
        server.stop()


def admin_get(platform: Platform, path: str) -> Any:
    response = httpx.get(f"{platform.url}{path}", headers=platform.auth, timeout=30)
    response.raise_for_status()
    return response.json()


def signed_in(browser: Any, platform: Platform) -> Any:
    """A browser context where alice signed in through the form; its page is on the gallery."""
    context = new_context(browser, platform)
    page = context.new_page()
    page.goto("/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator("#sign-in-password").click()
    expect(page.locator("#who")).to_have_text("alice")
    return page


def card(page: Any, space_id: str) -> Any:
    return page.locator(f'li.card-item[data-space="{space_id}"]')


def test_a_wrong_password_says_so_and_signs_nobody_in(browser: Any, platform: Platform) -> None:
    context = new_context(browser, platform)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password", exact=True).fill("not the passphrase")
    page.locator("#sign-in-password").click()
    expect(page.locator("#problem")).to_contain_text("do not match")
    expect(page.get_by_label("User name")).to_have_value("alice")  # kept; the password is not
    assert not [c for c in context.cookies() if c["name"] == "spaces_session"]
    context.close()


def test_signing_in_shows_my_spaces_with_the_private_badge(browser: Any, platform: Platform) -> None:
    page = signed_in(browser, platform)
    session = next(c for c in page.context.cookies() if c["name"] == "spaces_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    page.locator("#scope-mine").click()
    expect(page).to_have_url(re.compile(r"/\?owner=alice$"))
    expect(page.locator("li.card-item")).to_have_count(2)
    expect(card(page, VAULT).locator("[data-private]")).to_have_text("🔒 Private")
    expect(card(page, NOTES).locator("[data-private]")).to_have_count(0)
    page.get_by_role("searchbox").fill("vault")  # the live search keeps to my spaces, privates included
    expect(page.locator("li.card-item")).to_have_count(1)
    screenshot(page, "gallery-my-spaces")
    card(page, VAULT).locator("a").click()
    expect(page.locator("#private")).to_be_visible()
    app = page.frame_locator("iframe.app-frame")
    app.get_by_label("Text", exact=True).fill("members only")
    app.get_by_role("button", name="Submit").click()  # the app's own queue calls pass with the session too
    expect(app.get_by_label("Reversed")).to_have_value("ylno srebmem", timeout=60_000)
    assert "spaces_session" not in app.get_by_label("Cookies").input_value()  # the gateway kept it from the app
    page.context.close()


def test_the_settings_page_adds_a_secret_it_never_shows_and_changes_visibility(browser: Any,
                                                                               platform: Platform) -> None:
    page = signed_in(browser, platform)
    page.goto(f"/{NOTES}")
    page.locator("#settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    page.locator("#secret-key").fill("NOTES_API_KEY")
    page.locator("#secret-value").fill(SECRET)
    page.locator("#secret-add").click()
    expect(page.locator('#secret-list li[data-key="NOTES_API_KEY"]')).to_contain_text("value hidden")
    assert SECRET not in page.content()
    assert SECRET not in page.evaluate("() => [...document.querySelectorAll('input')].map(i => i.value).join()")
    assert "NOTES_API_KEY" in admin_get(platform, f"/api/spaces/{NOTES}/secrets")
    page.reload()
    expect(page.locator('#secret-list li[data-key="NOTES_API_KEY"]')).to_be_visible()
    assert SECRET not in page.content()

    page.locator("#variable-key").fill("GREETING")
    page.locator("#variable-value").fill("hello")
    page.locator("#variable-add").click()
    expect(page.locator('#variable-list li[data-key="GREETING"]')).to_contain_text("hello")

    page.get_by_label("Private").check()
    expect(page.locator("#visibility-state")).to_have_text("This space is private.")
    assert admin_get(platform, f"/api/spaces/{NOTES}")["private"] is True
    stranger = new_context(browser, platform).new_page()
    stranger.goto("/")
    expect(card(stranger, "alice/notes")).to_have_count(0)
    assert stranger.goto(f"/{NOTES}").status == 404
    screenshot(page, "settings-page")
    page.get_by_label("Private").uncheck()
    expect(page.locator("#visibility-state")).to_have_text("This space is public.")
    stranger.goto("/")
    expect(card(stranger, "alice/notes")).to_be_visible()
    stranger.context.close()
    page.context.close()


def test_a_share_link_opens_the_private_app_for_a_browser_without_an_account_until_revoked(
        browser: Any, platform: Platform) -> None:
    page = signed_in(browser, platform)
    page.goto(f"/{VAULT}/settings")
    page.locator("#share-expires").select_option("1h")
    page.locator("#share-create").click()
    expect(page.locator("#share-link")).to_have_value(re.compile(r"__share="))
    link = page.locator("#share-link").input_value()

    guest = browser.new_context()  # no cookies, no account
    guest.set_default_timeout(30_000)
    visitor = guest.new_page()
    visitor.goto(link)
    visitor.get_by_label("Text", exact=True).fill("shared with a guest")
    visitor.get_by_role("button", name="Submit").click()
    expect(visitor.get_by_label("Reversed")).to_have_value("tseug a htiw derahs", timeout=60_000)
    assert "spaces_share" not in visitor.get_by_label("Cookies").input_value()
    assert "__share" not in visitor.url  # the token became a cookie for this one app

    page.locator("#share-revoke").click()
    expect(page.locator('[data-status="share"]')).to_contain_text("revoked")
    assert visitor.goto(visitor.url).status == 404  # the cookie it holds opens nothing now
    guest.close()
    late = browser.new_context().new_page()
    answer = late.goto(link)
    assert answer.status == 403
    expect(late.locator("body")).to_contain_text("not valid")
    late.context.close()
    page.context.close()


def test_signing_out_hides_the_private_space(browser: Any, platform: Platform) -> None:
    page = signed_in(browser, platform)
    expect(card(page, VAULT)).to_be_visible()
    page.locator("#sign-out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    expect(card(page, NOTES)).to_be_visible()
    expect(card(page, VAULT)).to_have_count(0)
    assert page.goto(f"/{VAULT}").status == 404
    expect(page.locator("h1")).to_contain_text(f"No app named {VAULT}")
    page.context.close()


def test_sign_out_everywhere_ends_the_session_of_another_browser(browser: Any, platform: Platform) -> None:
    """Two browsers (two contexts: no cookie in common) signed in as alice; from the first she sees both on the
    Sessions page and signs out everywhere; the second, reloading, is signed out and sees her private space no
    more, and its copy of the old cookie opens nothing."""
    here, there = signed_in(browser, platform), signed_in(browser, platform)
    old_cookie = next(c for c in there.context.cookies() if c["name"] == "spaces_session")
    here.locator("#my-sessions").click()
    expect(here.locator("h1")).to_have_text("Where you are signed in")
    expect(here.locator("#session-list li[data-current=true]")).to_have_count(1)
    assert here.locator("#session-list li").count() >= 2
    here.locator("#sign-out-everywhere").click()
    expect(here.get_by_role("link", name="Sign in")).to_be_visible()
    there.reload()
    expect(there.get_by_role("link", name="Sign in")).to_be_visible()
    expect(card(there, VAULT)).to_have_count(0)
    replayed = httpx.get(f"{platform.url}/api/whoami-v2", cookies={"spaces_session": old_cookie["value"]})
    assert replayed.status_code == 401
    here.context.close()
    there.context.close()


class AttackerSite:
    """Another origin on this machine (another port is the same *site*: SameSite=Lax still sends the cookie)."""

    def __init__(self, root: Path, target: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text(f"""<!doctype html><title>win a prize</title>
<iframe name="sink"></iframe><iframe name="sink2"></iframe>
<form id="pause" method="post" action="{target}/api/spaces/{NOTES}/pause" target="sink"></form>
<form id="logout" method="post" action="{target}/logout" target="sink2"></form>
<script>
  document.getElementById("pause").submit();
  document.getElementById("logout").submit();
  fetch("{target}/api/spaces/{NOTES}", {{method: "DELETE", credentials: "include"}})
    .then(r => {{ document.title = "fetch " + r.status; }}, () => {{ document.title = "fetch refused"; }});
</script>""")
        handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_page_on_another_origin_cannot_pause_delete_or_sign_out_with_the_victims_session(
        browser: Any, platform: Platform, tmp_path: Path) -> None:
    page = signed_in(browser, platform)
    attacker = AttackerSite(tmp_path / "attacker", platform.url)
    try:
        answers: dict[str, Any] = {}
        page.on("response", lambda r: answers.setdefault(r.request.method + " " + r.url.split("?")[0], r))
        page.goto(attacker.url)
        expect(page).to_have_title("fetch refused")  # no CORS for another origin: the DELETE never went out
        pause = f"POST {platform.url}/api/spaces/{NOTES}/pause"
        # sync Playwright delivers "response" events only inside its own calls: each poll makes one
        wait_until(lambda: page.wait_for_timeout(50) or (pause in answers and f"POST {platform.url}/logout" in
                                                          answers), timeout=30, what="both forged form posts answered")
        refused = answers[pause]
        assert refused.status == 401  # the cookie went with it, and the missing CSRF token stopped it:
        assert "X-CSRF-Token" in json.loads(refused.body())["message"]
        assert answers[f"POST {platform.url}/logout"].status == 403
    finally:
        attacker.close()
    space = platform.wait_for(NOTES)  # a PAUSED or deleted space fails here
    assert space["desired"] == "running"
    page.goto("/")
    expect(page.locator("#who")).to_have_text("alice")  # still signed in
    page.context.close()
