"""Web sessions from the attacker's side, against a real `spaces serve` over real HTTP: a cookie copied from a
victim's browser stops working the moment the victim signs out; a user sees their sessions and ends them, an admin
ends anyone's, another user can do neither; a revoked token ends the sessions signed in with it; a member's pass
to a private app, seen in a link, cannot be used a second time; and behind a reverse proxy the sign-in throttle
counts each client's real address, while a client that is not the proxy cannot name another address to dodge it.

The platform trusts 127.0.0.1 as its reverse proxy. A client connecting from 127.0.0.2 (all of 127/8 is loopback
on Linux) is someone else: the platform sees that address and believes none of its X-Forwarded-* headers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spaces_harness import REPO, Platform, write_app

CLI = [sys.executable, "-m", "spaces_runtime.cli"]
PER_ADDRESS = 4  # failed sign-ins allowed per address in the window: small, so the test makes few requests
PROXY = "127.0.0.1"
STRANGER = "127.0.0.2"  # connects directly, not through the proxy


class Site:
    def __init__(self, platform: Platform, tokens: dict[str, str]) -> None:
        self.platform = platform
        self.tokens = tokens

    def browser(self, user_agent: str, source: str = PROXY) -> httpx.Client:
        """A client that keeps cookies, as a browser does, connecting from ``source``."""
        return httpx.Client(base_url=self.platform.url, timeout=30, headers={"User-Agent": user_agent},
                            transport=httpx.HTTPTransport(local_address=source))

    def sign_in(self, client: httpx.Client, user: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.sign_in_with(client, self.tokens[user], headers or {})

    @staticmethod
    def sign_in_with(client: httpx.Client, token: str, headers: dict[str, str]) -> httpx.Response:
        return client.post("/login", data={"method": "token", "token": token, "next": "/"}, headers=headers)

    def api(self, user: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        return httpx.request(method, f"{self.platform.url}{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.tokens[user]}"}, **kwargs)  # type: ignore[arg-type]


def whoami(client: httpx.Client) -> str | None:
    """Who the gallery says is signed in for this client's cookie (None: nobody)."""
    found = re.search(r'id="who"[^>]*>([^<]+)<', client.get("/").text)
    return found.group(1) if found else None


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text)
    assert found, "a signed-in page carries the CSRF token"
    return found.group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("sessions")
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false", "SPACES_TRUSTED_PROXIES": PROXY,
                                            "SPACES_SIGN_IN_FAILURES_PER_ADDRESS": str(PER_ADDRESS)}).start()
    tokens = {"admin": platform.token, **platform.add_users("alice", "bob", "carol")}
    try:
        yield Site(platform, tokens)
    finally:
        platform.stop()


def test_a_stolen_cookie_stops_working_the_moment_the_victim_signs_out(site: Site) -> None:
    victim, thief = site.browser("victim's browser"), site.browser("thief's script")
    assert site.sign_in(victim, "alice").status_code == 303
    thief.cookies.update(victim.cookies)  # copied off the victim's disk, or out of a proxy's log
    assert whoami(thief) == "alice"
    assert thief.get("/api/whoami-v2").json()["name"] == "alice"
    stored = b"".join(p.read_bytes() for p in site.platform.data_dir.glob("*.db*"))
    assert victim.cookies["spaces_session"].encode() not in stored, "the database keeps only the id's hash"

    signed_out = victim.post("/logout", data={"csrf": csrf_of(victim)})
    assert signed_out.status_code == 303 and whoami(victim) is None
    thief_after = thief.get("/api/whoami-v2")
    assert thief_after.status_code == 401, "the copy ended with the session, not when the cookie expires"
    assert whoami(thief) is None
    assert thief.get("/settings/sessions").status_code == 303  # to the sign-in page


def test_a_user_lists_and_ends_their_sessions_and_nobody_else_can(site: Site) -> None:
    laptop, phone = site.browser("Laptop Firefox"), site.browser("Phone Safari")
    for client in (laptop, phone):
        assert site.sign_in(client, "bob").status_code == 303
    listed = site.api("bob", "GET", "/api/sessions").json()
    agents = {s["user_agent"]: s for s in listed}
    assert {"Laptop Firefox", "Phone Safari"} <= set(agents) and agents["Phone Safari"]["address"] == PROXY
    page = laptop.get("/settings/sessions")
    assert page.status_code == 200 and "Phone Safari" in page.text and "this browser" in page.text

    phone_id = agents["Phone Safari"]["id"]
    assert site.api("alice", "GET", "/api/sessions", params={"user": "bob"}).status_code == 403
    assert site.api("alice", "DELETE", f"/api/sessions/{phone_id}").status_code == 404
    assert site.api("alice", "DELETE", "/api/sessions", params={"user": "bob"}).status_code == 403
    forged = laptop.post(f"/settings/sessions/{phone_id}/end", data={"csrf": "not the token"})
    assert forged.status_code == 403 and whoami(phone) == "bob", "a form from elsewhere ends nothing"
    alices = site.browser("alice's browser")
    site.sign_in(alices, "alice")
    refused = alices.post(f"/settings/sessions/{phone_id}/end", data={"csrf": csrf_of(alices)})
    assert refused.status_code == 403 and whoami(phone) == "bob", "alice cannot end bob's session"

    ended = laptop.post(f"/settings/sessions/{phone_id}/end", data={"csrf": csrf_of(laptop)})
    assert ended.status_code == 303 and whoami(phone) is None and whoami(laptop) == "bob"
    listed_by_admin = json.loads(site.platform.cli("sessions", "list", "--user", "bob", "--json", check=True).stdout)
    assert phone_id not in [s["id"] for s in listed_by_admin] and listed_by_admin
    everywhere = site.platform.cli("sessions", "revoke", "--all", "--user", "bob", check=True)
    assert "signed bob out everywhere" in everywhere.stdout
    assert whoami(laptop) is None, "an admin signed bob out everywhere"
    assert whoami(alices) == "alice"


def test_revoking_a_token_ends_the_sessions_signed_in_with_it(site: Site) -> None:
    made = json.loads(site.platform.cli("tokens", "create", "--user", "alice", "--name", "kiosk", "--json",
                                        check=True).stdout)
    kiosk = site.browser("kiosk")
    assert kiosk.post("/login", data={"method": "token", "token": made["token"]}).status_code == 303
    assert whoami(kiosk) == "alice"
    site.platform.cli("tokens", "revoke", str(made["id"]), check=True)
    assert whoami(kiosk) is None


def test_a_disabled_account_and_one_whose_tokens_are_all_revoked_are_signed_out_everywhere(site: Site) -> None:
    first, second = site.browser("carol's laptop"), site.browser("carol's phone")
    for client in (first, second):
        assert site.sign_in(client, "carol").status_code == 303
    assert site.api("alice", "POST", "/api/users/carol/disable").status_code == 403, "admins only"
    assert site.api("admin", "POST", "/api/users/admin/disable").status_code == 403, "nor oneself"
    site.platform.cli("users", "disable", "carol", check=True)
    assert whoami(first) is None and whoami(second) is None
    refused = site.api("carol", "GET", "/api/whoami-v2")
    assert refused.status_code == 401 and "disabled" in refused.json()["message"]
    assert site.sign_in(site.browser("carol again"), "carol").status_code == 401
    users = json.loads(site.platform.cli("users", "list", "--json", check=True).stdout)
    assert next(u for u in users if u["name"] == "carol")["disabled"] is True

    site.platform.cli("users", "enable", "carol", check=True)
    assert site.api("carol", "GET", "/api/whoami-v2").json()["name"] == "carol", "her tokens were kept"
    assert whoami(first) is None, "the sessions that ended stay ended"
    again = site.browser("carol's new browser")
    assert site.sign_in(again, "carol").status_code == 303
    env = {**site.platform.cli_env(), "SPACES_DATA_DIR": "/nonexistent", "SPACES_TOKEN": site.tokens["carol"]}
    revoked = subprocess.run([*CLI, "tokens", "revoke", "--all"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=120)
    assert revoked.returncode == 0 and "ended 1 web sessions" in revoked.stdout, revoked.stderr
    assert whoami(again) is None
    assert site.api("carol", "GET", "/api/whoami-v2").status_code == 401


def test_an_admin_revoking_all_their_tokens_keeps_the_platform_s_own(site: Site) -> None:
    """The admin's stolen laptop token stops; the local admin token in the data dir, which the CLI on the
    platform's own machine uses without typing, is left (revoked by id only), and the CLI says so."""
    made = site.platform.cli("tokens", "create", "--name", "admin laptop", "--json", check=True)
    laptop = json.loads(made.stdout)["token"]
    revoked = site.platform.cli("tokens", "revoke", "--all", check=True)
    assert "kept the platform's own token" in " ".join(revoked.stdout.split()), revoked.stdout
    stolen = httpx.get(f"{site.platform.url}/api/whoami-v2", headers={"Authorization": f"Bearer {laptop}"},
                       timeout=30)
    assert stolen.status_code == 401
    assert site.api("admin", "GET", "/api/whoami-v2").json()["name"] == "admin"
    assert site.platform.cli("whoami", check=True).returncode == 0


def test_a_members_pass_to_a_private_app_is_good_once(site: Site, tmp_path: Path) -> None:
    folder = write_app(tmp_path / "vault", {"README.md": "---\ntitle: Vault\nsdk: static\n---\n",
                                            "index.html": "alice's vault"})
    env = {**site.platform.cli_env(), "SPACES_TOKEN": site.tokens["alice"]}
    deployed = subprocess.run([*CLI, "deploy", str(folder), "--name", "alice/vault", "--private"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600)
    assert deployed.returncode == 0, deployed.stderr
    member = site.browser("alice's browser")
    site.sign_in(member, "alice")
    opened = member.get("/_platform/open/alice/vault", params={"next": "/"})
    assert opened.status_code == 303 and "__pass=" in opened.headers["location"]
    link = httpx.URL(opened.headers["location"])
    app_host = {"Host": link.netloc.decode()}  # alice-vault.localhost:PORT, as the browser would ask for it
    path = link.raw_path.decode()

    exchanged = httpx.get(f"{site.platform.url}{path}", headers=app_host, timeout=30)
    assert exchanged.status_code == 303 and "spaces_pass_alice_vault=" in exchanged.headers["set-cookie"]
    cookie = exchanged.headers["set-cookie"].split(";")[0]
    assert httpx.get(f"{site.platform.url}/", headers={**app_host, "Cookie": cookie}).text == "alice's vault"

    replayed = httpx.get(f"{site.platform.url}{path}", headers=app_host, timeout=30)  # the link, seen in a log
    assert replayed.status_code == 403 and "used already" in replayed.text
    assert "set-cookie" not in replayed.headers
    fresh = httpx.URL(member.get("/_platform/open/alice/vault").headers["location"])
    assert httpx.get(f"{site.platform.url}{fresh.raw_path.decode()}", headers=app_host).status_code == 303

    # through the proxy over HTTPS the app's cookie is a __Host- one, and only that name opens the app there
    https = {**app_host, "X-Forwarded-Proto": "https"}
    fresh = httpx.URL(member.get("/_platform/open/alice/vault").headers["location"])
    secure = httpx.get(f"{site.platform.url}{fresh.raw_path.decode()}", headers=https).headers["set-cookie"]
    assert secure.startswith("__Host-spaces_pass_alice_vault=") and "Secure" in secure and "Path=/;" in secure
    assert "domain" not in secure.lower()
    value = secure.split(";")[0].split("=", 1)[1]
    opened_secure = httpx.get(f"{site.platform.url}/", headers={**https, "Cookie": secure.split(";")[0]})
    assert opened_secure.text == "alice's vault"
    planted = httpx.get(f"{site.platform.url}/", headers={**https, "Cookie": f"spaces_pass_alice_vault={value}"})
    assert planted.status_code == 404, "over HTTPS a cookie without the prefix (one a sibling host set) opens nothing"


def test_a_client_that_is_not_the_proxy_cannot_name_another_address_to_dodge_the_throttle(site: Site) -> None:
    stranger = site.browser("guesser", source=STRANGER)
    # nor claim HTTPS it did not use: its cookie keeps the plain name, without Secure
    plain = site.sign_in(stranger, "alice", {"X-Forwarded-Proto": "https"}).headers["set-cookie"]
    assert plain.startswith("spaces_session=") and "secure" not in plain.lower()
    sessions = site.api("alice", "GET", "/api/sessions").json()
    assert STRANGER in [s["address"] for s in sessions]
    for attempt in range(PER_ADDRESS):
        forged = {"X-Forwarded-For": f"198.51.100.{attempt}"}  # a new "address" for every guess
        assert site.sign_in_with(stranger, "spt_guess", forged).status_code == 401
    blocked = site.sign_in_with(stranger, "spt_guess", {"X-Forwarded-For": "198.51.100.200"})
    assert blocked.status_code == 429 and "from your address" in blocked.text
    assert site.sign_in(stranger, "alice", {"X-Forwarded-For": "198.51.100.201"}).status_code == 429


def test_behind_the_trusted_proxy_each_client_is_throttled_by_its_own_address(site: Site) -> None:
    proxy = site.browser("proxy")
    real = "203.0.113.7"
    for attempt in range(PER_ADDRESS):
        # the client made up the first address; the proxy appended the one it saw: only that one counts
        forwarded = {"X-Forwarded-For": f"192.0.2.{attempt}, {real}"}
        assert site.sign_in_with(proxy, "spt_guess", forwarded).status_code == 401
    blocked = site.sign_in(proxy, "alice", {"X-Forwarded-For": real})
    assert blocked.status_code == 429 and "from your address" in blocked.text
    other = site.sign_in(proxy, "alice", {"X-Forwarded-For": "203.0.113.8", "X-Forwarded-Proto": "https"})
    assert other.status_code == 303, "another client behind the same proxy is not slowed down"
    cookie = other.headers["set-cookie"]
    assert cookie.startswith("__Host-spaces_session=") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie, "the browser reached the proxy over HTTPS: a __Host- cookie"
    sessions = site.api("alice", "GET", "/api/sessions").json()
    assert "203.0.113.8" in [s["address"] for s in sessions]
    value = cookie.split(";")[0].split("=", 1)[1]
    https = {"X-Forwarded-For": "203.0.113.8", "X-Forwarded-Proto": "https"}
    as_sent = httpx.get(f"{site.platform.url}/api/whoami-v2", headers={**https,
                                                                      "Cookie": f"__Host-spaces_session={value}"})
    assert as_sent.json()["name"] == "alice"
    planted = httpx.get(f"{site.platform.url}/api/whoami-v2", headers={**https, "Cookie": f"spaces_session={value}"})
    assert planted.status_code == 401, "over HTTPS only the __Host- name counts: no sibling host can plant one"
