"""People sharing one platform, tried from the side of the person each rule must stop: alice cannot write bob's
spaces nor see his private one, an organization's read member cannot deploy into it, a revoked token stops at
once, a deployed app's own code cannot write without a token (loopback included), and someone guessing
passwords on the sign-in form is stopped after a few tries per account and per address."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from polling import wait_until

from spaces_harness import Platform, gradio_readme, write_app

STATIC = "---\ntitle: Site\nsdk: static\n---\n"
CLI = [sys.executable, "-m", "spaces_runtime.cli"]
SIGN_IN_WINDOW_S = 15  # wide enough for the 13 sign-ins before the wait on a loaded machine; all of it is waited out


class Team:
    def __init__(self, platform: Platform, tmp: Path) -> None:
        self.platform = platform
        self.tmp = tmp
        self.tokens: dict[str, str] = {}

    def as_user(self, user: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """The CLI of another person: their own token, no access to the platform's data dir."""
        env = {**self.platform.cli_env(), "SPACES_DATA_DIR": str(self.tmp / "nowhere"),
               "SPACES_CONFIG_DIR": str(self.tmp / f"config-{user}"), "SPACES_TOKEN": self.tokens[user]}
        result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"{user}: spaces {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def get(self, user: str | None, path: str) -> httpx.Response:
        return httpx.get(f"{self.platform.url}{path}", headers=self.headers(user) if user else {}, timeout=30)

    def site(self, name: str, text: str) -> Path:
        return write_app(self.tmp / name, {"README.md": STATIC, "index.html": text})


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Team:
    root = tmp_path_factory.mktemp("people")
    # a short sign-in window, so the test sees a throttled account sign in again once it has passed
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false",
                                            "SPACES_SIGN_IN_WINDOW_S": str(SIGN_IN_WINDOW_S)}).start()
    team = Team(platform, root)
    team.tokens.update(platform.add_users("alice", "bob", "carol"))
    platform.cli("orgs", "add", "team", check=True)
    platform.cli("orgs", "add-member", "team", "alice", "--role", "write", check=True)
    platform.cli("orgs", "add-member", "team", "carol", "--role", "read", check=True)
    yield team
    platform.stop()


def test_alice_cannot_write_bobs_spaces(team: Team) -> None:
    team.as_user("bob", "deploy", str(team.site("bob-site", "bob's page")), check=True)  # bob/bob-site by default
    for verb, call in [("delete", httpx.delete), ("pause", httpx.post), ("restart", httpx.post)]:
        path = "/api/spaces/bob/bob-site" if verb == "delete" else f"/api/spaces/bob/bob-site/{verb}"
        response = call(f"{team.platform.url}{path}", headers=team.headers("alice"))
        assert response.status_code == 403, (verb, response.text)
        assert "not the namespace of alice" in response.json()["message"]
    overwrite = team.as_user("alice", "deploy", str(team.site("evil", "alice was here")), "--name", "bob/bob-site")
    assert overwrite.returncode == 1 and "HTTP 403" in overwrite.stderr
    assert httpx.get(f"{team.platform.url}/spaces/bob/bob-site/").text == "bob's page"


def test_a_private_space_is_absent_for_everyone_else(team: Team) -> None:
    team.as_user("bob", "deploy", str(team.site("secret", "bob's secret")), "--private", check=True)
    for stranger in ("alice", None):
        assert team.get(stranger, "/api/spaces/bob/secret").status_code == 404
        assert "bob/secret" not in [s["id"] for s in team.get(stranger, "/api/spaces").json()]
        assert team.get(stranger, "/api/spaces/bob/secret/logs/build?follow=0").status_code == 404
        assert team.get(stranger, "/api/spaces/bob/secret/events").status_code == 404
    deleting = httpx.delete(f"{team.platform.url}/api/spaces/bob/secret", headers=team.headers("alice"))
    assert deleting.status_code == 404, "a private space's name must not leak through a 403"
    mine = team.get("bob", "/api/spaces/bob/secret")
    assert mine.status_code == 200 and mine.json()["private"] is True
    assert team.get(None, "/api/spaces/bob/secret").status_code == 404
    team.as_user("bob", "settings", "bob/secret", "--private", "false", check=True)
    assert team.get(None, "/api/spaces/bob/secret").status_code == 200


def test_an_org_write_member_deploys_into_it_and_a_read_member_cannot(team: Team) -> None:
    team.as_user("alice", "deploy", str(team.site("team-site", "team page")), "--name", "team/site", "--private",
                 check=True)
    refused = team.as_user("carol", "deploy", str(team.site("carol", "carol's")), "--name", "team/site")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr and "'read'" in refused.stderr
    assert team.get("carol", "/api/spaces/team/site").status_code == 200, "read members see private org spaces"
    assert team.get("bob", "/api/spaces/team/site").status_code == 404


def test_a_revoked_token_stops_working_at_once(team: Team) -> None:
    made = json.loads(team.platform.cli("tokens", "create", "--user", "alice", "--name", "ci", "--json",
                                        check=True).stdout)
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert httpx.get(f"{team.platform.url}/api/whoami-v2", headers=headers).json()["name"] == "alice"
    team.platform.cli("tokens", "revoke", str(made["id"]), check=True)
    response = httpx.get(f"{team.platform.url}/api/whoami-v2", headers=headers)
    assert response.status_code == 401 and "not valid" in response.json()["message"]
    assert "token" in response.headers.get("www-authenticate", "").lower() or response.headers["www-authenticate"]


def test_a_read_token_never_writes(team: Team) -> None:
    made = json.loads(team.as_user("bob", "tokens", "create", "--role", "read", "--json", check=True).stdout)
    response = httpx.post(f"{team.platform.url}/api/spaces/bob/bob-site/restart",
                          headers={"Authorization": f"Bearer {made['token']}"})
    assert response.status_code == 403 and "read-only" in response.json()["message"]


def test_a_deployed_apps_own_code_cannot_write_without_a_token(team: Team) -> None:
    """The attack of the issue: an app's code deletes another space over loopback. It must get 401."""
    attack = (
        "import urllib.request, urllib.error\n"
        f"request = urllib.request.Request('{team.platform.url}/api/spaces/bob/bob-site', method='DELETE')\n"
        "try:\n    status = urllib.request.urlopen(request).status\n"
        "except urllib.error.HTTPError as exc:\n    status = exc.code\n"
        "except OSError:\n    status = 'unreachable'\n"  # the sandbox's own network may not reach the host
        "print(f'attack answered {status}', flush=True)\n"
        "import gradio as gr\ngr.Interface(lambda s: s, 'text', 'text').launch()\n")
    folder = write_app(team.tmp / "attacker", {"README.md": gradio_readme("Attacker"), "app.py": attack})
    team.as_user("alice", "deploy", str(folder), "--name", "alice/attacker", check=True)
    log = wait_until(lambda: "attack answered" in (text := team.get("alice", "/api/spaces/alice/attacker/logs/run"
                                                                     "?follow=0").text) and text,
                     timeout=60, what="the attacker's result in its run log")
    assert "attack answered 401" in log or "attack answered unreachable" in log, log[-2000:]
    assert httpx.get(f"{team.platform.url}/spaces/bob/bob-site/").text == "bob's page"


def test_every_write_is_in_the_audit_trail(team: Team) -> None:
    found = json.loads(team.platform.cli("events", "--json", check=True).stdout)
    deploys = [e for e in found if e["action"] == "deploy" and e["target"] == "bob/bob-site"]
    assert deploys and deploys[0]["actor"] == "bob" and deploys[0]["token_id"] is not None
    assert any(e["action"] == "revoke token" and e["target"] == "alice" for e in found)
    refused = team.as_user("alice", "events", "bob/bob-site")
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr


def test_a_private_app_is_a_404_through_both_link_forms_and_a_share_link_opens_it(team: Team) -> None:
    """For a stranger the app does not exist (page, host link, Gradio's API and queue); a share link opens it for
    a client with no account, including gradio_client; revoking ends it at once, and an expired link says so."""
    from gradio_client import Client

    folder = write_app(team.tmp / "private-gradio", {"README.md": gradio_readme("Private"),
                                                      "app.py": "import gradio as gr\n"
                                                                "def predict(s):\n    return s[::-1]\n"
                                                                "gr.Interface(predict, 'text', 'text').launch()\n"})
    team.as_user("bob", "deploy", str(folder), "--name", "bob/vault", "--private", check=True)
    base = f"{team.platform.url}/spaces/bob/vault/"
    host_form = {"Host": f"bob-vault.localhost:{team.platform.port}"}  # as a browser sends it for the host link
    assert httpx.get(f"{team.platform.url}/", headers=host_form, timeout=30).status_code == 404
    for link in (base, f"{base}gradio_api/info", f"{base}gradio_api/queue/join"):
        assert httpx.get(link, timeout=30).status_code == 404, link
    with_token = {**host_form, **team.headers("bob")}
    assert httpx.get(f"{team.platform.url}/", headers=with_token, timeout=30).status_code == 200
    assert httpx.get(base, headers=team.headers("alice"), timeout=30).status_code == 404
    assert httpx.get(base, headers=team.headers("bob"), timeout=30).status_code == 200

    link = team.as_user("bob", "share", "bob/vault", "--expires", "1h", check=True).stdout.strip()
    shared = link.split("?")[0]  # the app's link on the host the platform names (a cookie is per host)
    with httpx.Client(timeout=30) as visitor:  # no account, no token: just the link
        opened = visitor.get(link)
        assert opened.status_code == 303 and "__share" not in opened.headers["location"]
        assert visitor.get(shared).status_code == 200
        cookie = "; ".join(f"{k}={v}" for k, v in visitor.cookies.items())
        assert Client(shared, headers={"Cookie": cookie}, verbose=False).predict("abc", api_name="/predict") == "cba"
        assert httpx.get(f"{shared}gradio_api/info", timeout=30).status_code == 404, "the cookie opens it, not the link"
        team.as_user("bob", "share", "bob/vault", "--revoke", check=True)
        wait_until(lambda: visitor.get(shared).status_code == 404, timeout=5, what="the revoked link to stop working")
        refused = visitor.get(link)
        assert refused.status_code == 403 and "not valid" in refused.text

    short = team.as_user("bob", "share", "bob/vault", "--expires", "1s", check=True).stdout.strip()
    expired = wait_until(lambda: (r := httpx.get(short, timeout=30)).status_code == 403 and r, timeout=10,
                         what="the one-second link to expire")
    assert "expired" in expired.text
    tampered = httpx.get(link.replace("__share=", "__share=x"), timeout=30)
    assert tampered.status_code == 403 and "not valid" in tampered.text


def test_guessing_passwords_is_stopped_per_account_and_per_address_and_says_when_to_retry(team: Team) -> None:
    for user in ("alice", "bob"):
        set_password = subprocess.run([*CLI, "users", "passwd", user], input=f"the real {user} passphrase\n",
                                      env=team.platform.cli_env(), capture_output=True, text=True, timeout=120)
        assert set_password.returncode == 0, set_password.stderr

    def sign_in(user: str, password: str) -> httpx.Response:
        return httpx.post(f"{team.platform.url}/login", timeout=30,
                          data={"method": "password", "user": user, "password": password, "next": "/"})

    for guess in range(5):  # the attacker's guesses at alice's password
        assert sign_in("alice", f"guess {guess}").status_code == 401
    blocked = sign_in("alice", "the real alice passphrase")  # even the right one, until the window passes
    assert blocked.status_code == 429
    wait = int(blocked.headers["Retry-After"])
    assert 1 <= wait <= SIGN_IN_WINDOW_S
    assert f"Too many failed sign-ins for alice or from your address. Try again in {wait} seconds" in blocked.text
    assert "spaces_session" not in blocked.headers.get("set-cookie", "")
    assert sign_in("bob", "the real bob passphrase").status_code == 303  # bob, same address: 5 of 10 used

    for other in range(5):  # the attacker moves on to other names from the same address
        assert sign_in(f"user{other}", "guess").status_code == 401
    from_here = sign_in("bob", "the real bob passphrase")
    assert from_here.status_code == 429 and "from your address" in from_here.text

    # alice, once the window has passed, signs in (her tries while it was closed did not extend it)
    signed_in = wait_until(lambda: sign_in("alice", "the real alice passphrase").status_code == 303,
                           SIGN_IN_WINDOW_S + 30, "the window to pass", interval=0.5)
    assert signed_in
