"""The app page's Files tab and Duplicate button, in real Chromium against a real `spaces serve`: alice browses her
space's files at the version that serves (a folder, a highlighted file whose markup is shown as text, a binary
file and a file in LFS as their sizes with a download), duplicates it into a new name with its variables and one
secret she gives (never the original's value), and bob, an outsider, can neither see the files of her private
space nor duplicate it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from browsing import new_context, screenshot

from spaces_harness import REPO, Platform, write_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
expect = pytest.importorskip("playwright.sync_api").expect  # CI turns this skip into a failure

TOOL = "alice/tool"
HIDDEN = "alice/hidden"
CODE = 'GREETING = "<script>window.__injected = 1</script>"\n\n\ndef main():\n    print(GREETING)\n'
BINARY = bytes(range(256)) * 8  # NUL bytes: a binary file
WEIGHTS = b"w" * 12_400
POINTER = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(WEIGHTS).hexdigest()}\n"
           f"size {len(WEIGHTS)}\n")
SECRET = "sk-original-4f1e9a0c"
TOKENS: dict[str, str] = {}  # each person's token on this module's platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("files")
    server = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false"}).start()
    try:
        TOKENS.update(server.add_users("alice", "bob", token_name="web"))
        tool = write_app(root / "tool", {"README.md": "---\ntitle: Tool\nsdk: static\n---\n",
                                         "index.html": "<h1>tool</h1>", "weights.bin": POINTER})
        for folder in ("src", "data"):
            (tool / folder).mkdir()
        (tool / "src" / "main.py").write_text(CODE)
        (tool / "data" / "blob.bin").write_bytes(BINARY)
        server.cli("deploy", str(tool), "--name", TOOL, check=True)
        server.cli("variables", "set", TOOL, "GREETING", "hello", check=True)
        secret = subprocess.run([sys.executable, "-m", "spaces_runtime.cli", "secrets", "set", TOOL, "API_KEY"],
                                input=SECRET + "\n", cwd=REPO, env=server.cli_env(), capture_output=True, text=True,
                                timeout=120)
        assert secret.returncode == 0, secret.stderr
        hidden = write_app(root / "hidden", {"README.md": "---\ntitle: Hidden\nsdk: static\n---\n",
                                             "index.html": "<h1>hidden</h1>"})
        server.cli("deploy", str(hidden), "--name", HIDDEN, "--private", check=True)
        server.wait_for(TOOL)
        yield server
    finally:
        server.stop()


def token(platform: Platform, user: str) -> str:
    return TOKENS[user]


def signed_in(browser: Any, platform: Platform, user: str) -> Any:
    page = new_context(browser, platform).new_page()
    page.goto("/login")
    page.locator("#token").fill(token(platform, user))
    page.locator("#sign-in-token").click()
    expect(page.locator("#who")).to_have_text(user)
    return page


def api(platform: Platform, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{platform.url}{path}", timeout=60,
                         headers={"Authorization": f"Bearer {token(platform, user)}"}, **kwargs)


def test_the_files_tab_browses_the_serving_version(browser: Any, platform: Platform) -> None:
    page = signed_in(browser, platform, "alice")
    page.goto(f"/{TOOL}")
    page.locator("#tab-files").click()
    expect(page.get_by_role("heading", name="Files")).to_be_visible()
    running = api(platform, "alice", "GET", f"/api/spaces/{TOOL}").json()
    expect(page.locator("#files-version")).to_contain_text(f"At commit {running['running_sha'][:12]}")
    listing = page.locator("#file-list li")
    expect(listing).to_have_count(5)  # data/ and src/ first, then the files
    assert [li.get_attribute("data-path") for li in listing.all()] == [
        "data", "src", "README.md", "index.html", "weights.bin"]
    expect(page.locator('li[data-path="weights.bin"]')).to_contain_text("12.1 kB · LFS")

    page.get_by_role("link", name="📁 src").click()
    page.get_by_role("link", name="📄 main.py").click()
    code = page.locator("#file-code")
    expect(code).to_contain_text('GREETING = "<script>window.__injected = 1</script>"')  # shown, as text
    assert page.evaluate("window.__injected") is None  # never run
    assert code.locator("span").count() > 3  # highlighted: Pygments' tokens
    screenshot(page, "files-tab")

    page.goto(f"/{TOOL}/blob/main/data/blob.bin")
    expect(page.locator("#file-binary")).to_contain_text("binary file (2.0 kB)")
    download = page.locator("#file-download").get_attribute("href")
    assert httpx.get(f"{platform.url}{download}", timeout=30).content == BINARY
    page.goto(f"/{TOOL}/blob/main/weights.bin")
    expect(page.locator("#file-binary")).to_contain_text("stored with Git LFS (12.1 kB)")
    page.goto(f"/{TOOL}/blob/main/nope.txt")
    expect(page.get_by_role("heading", name="No such file")).to_be_visible()
    page.context.close()


def test_duplicate_copies_the_code_and_variables_with_the_secrets_the_user_gives(browser: Any,
                                                                                  platform: Platform) -> None:
    page = signed_in(browser, platform, "alice")
    page.goto(f"/{TOOL}")
    page.locator("#duplicate").click()
    expect(page.get_by_role("heading", name="Duplicate this Space")).to_be_visible()
    expect(page.locator('#duplicate-variables li[data-key="GREETING"]')).to_contain_text("hello")
    expect(page.locator('#duplicate-secrets li[data-key="API_KEY"]')).to_be_visible()
    assert SECRET not in page.content()  # a secret's name, never its value
    page.locator("#duplicate-name").fill("tool-copy")
    page.locator('[data-secret="API_KEY"]').fill("sk-the-copy's-own")
    page.locator("#duplicate-submit").click()
    expect(page).to_have_url(f"{platform.url}/alice/tool-copy")
    copy = platform.wait_for("alice/tool-copy")
    assert copy["private"] is False
    variables = api(platform, "alice", "GET", "/api/spaces/alice/tool-copy/variables").json()
    assert {key: v["value"] for key, v in variables.items()} == {"GREETING": "hello"}
    secrets = api(platform, "alice", "GET", "/api/spaces/alice/tool-copy/secrets").json()
    assert list(secrets) == ["API_KEY"]  # the one alice gave the copy
    assert httpx.get(f"{platform.url}/spaces/alice/tool-copy/src/main.py", timeout=30).text == CODE

    page.goto(f"/{TOOL}/duplicate")  # the same name again: refused with the reason, nothing changed
    page.locator("#duplicate-name").fill("tool-copy")
    page.locator("#duplicate-submit").click()
    expect(page.locator("#duplicate-status")).to_contain_text("alice/tool-copy already exists")
    page.context.close()


def test_an_outsider_cannot_see_the_files_of_a_private_space_nor_duplicate_it(browser: Any,
                                                                               platform: Platform) -> None:
    page = signed_in(browser, platform, "bob")
    for path in (f"/{HIDDEN}/tree/main", f"/{HIDDEN}/blob/main/index.html", f"/{HIDDEN}/duplicate"):
        assert page.goto(path).status == 404
        expect(page.locator("h1")).to_contain_text(f"No app named {HIDDEN}")
    download = page.request.get(f"{platform.url}/spaces/{HIDDEN}/resolve/main/index.html")  # with bob's cookie
    assert download.status == 404 and "<h1>hidden</h1>" not in download.text()
    refused = api(platform, "bob", "POST", f"/api/spaces/{HIDDEN}/duplicate", json={"repository": "bob/hidden"})
    assert refused.status_code == 404
    assert api(platform, "bob", "GET", "/api/spaces/bob/hidden").status_code == 404  # nothing was made

    page.goto(f"/{TOOL}/duplicate")  # a public space: bob may copy it, into his own namespace only
    assert [o.get_attribute("value") for o in page.locator("#duplicate-owner option").all()] == ["bob"]
    into_alice = api(platform, "bob", "POST", f"/api/spaces/{TOOL}/duplicate", json={"repository": "alice/mine"})
    assert into_alice.status_code == 403
    page.context.close()

    stranger = new_context(browser, platform).new_page()  # nobody signed in: sign in first
    stranger.goto(f"/{TOOL}/duplicate")
    expect(stranger).to_have_url(f"{platform.url}/login?next=%2F{TOOL.replace('/', '%2F')}%2Fduplicate")
    stranger.context.close()
