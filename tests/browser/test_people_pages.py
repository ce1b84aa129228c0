"""Sign-in, sign-out, privacy and the settings page, rendered by the real routers over a real store (no browser,
no running apps): what a visitor, a member and someone from another site each get back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pages import add_space, make_platform

from spaces_runtime.auth.passwords import hash_password
from spaces_runtime.errors import SpacesError
from spaces_runtime.server import accounts, api, gallery, secrets, web
from spaces_runtime.server.web import WRONG_PASSWORD, safe_next
from spaces_runtime.wiring import Platform

PASSWORD = "correct horse battery"
CARD = re.compile(r'<li class="card-item" data-space="([^"]+)"')
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@cache
def password_hash(user: str) -> str:
    return hash_password(f"{PASSWORD} {user}")  # argon2 is slow on purpose: once per user for the module


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    p = make_platform(tmp_path / "data")
    for user in ("alice", "bob"):
        p.accounts.add_user(user)
        p.accounts.set_password_hash(user, password_hash(user))
    p.accounts.add_org("team")
    p.accounts.set_member("team", "alice", "write")
    add_space(p, "alice/diary", title="Alice's diary")
    p.store.update("alice/diary", private=True)
    add_space(p, "team/board", title="Team board")
    p.store.update("team/board", private=True)
    add_space(p, "bob/public", title="Bob in public")
    return p


def make_app(p: Platform) -> FastAPI:
    app = FastAPI()
    app.state.platform = p

    @app.exception_handler(SpacesError)
    async def spaces_error(_: Any, exc: SpacesError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.http_status)

    for module in (api, accounts, secrets, web, gallery):
        app.include_router(module.router)
    return app


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    return make_app(platform)


def browser(app: FastAPI, base_url: str = "http://testserver") -> TestClient:
    return TestClient(app, base_url=base_url, follow_redirects=False)


def sign_in(client: TestClient, user: str) -> str:
    """Signs ``client`` in with the password form; the CSRF token its pages carry."""
    answer = client.post("/login", data={"method": "password", "user": user, "password": f"{PASSWORD} {user}"})
    assert answer.status_code == 303, answer.text
    found = CSRF.search(client.get("/").text)
    assert found, "a signed-in page carries the CSRF token"
    return found.group(1)


def cards(html: str) -> list[str]:
    return CARD.findall(html)


@pytest.fixture
def visitor(app: FastAPI) -> Iterator[TestClient]:
    with browser(app) as client:
        yield client


def test_private_spaces_are_absent_for_a_visitor_everywhere(visitor: TestClient) -> None:
    assert cards(visitor.get("/").text) == ["bob/public"]
    assert cards(visitor.get("/_platform/cards?q=diary").text) == []
    assert cards(visitor.get("/_platform/cards?owner=alice").text) == []
    assert visitor.get("/_platform/card/alice/diary").status_code == 404
    assert visitor.get("/_platform/panel/alice/diary").status_code == 404
    private, nothing = visitor.get("/alice/diary"), visitor.get("/alice/nothing")
    assert private.status_code == nothing.status_code == 404
    assert "No app named alice/diary" in private.text and "Alice's diary" not in private.text
    assert visitor.get("/alice/diary/settings").status_code == 404
    assert 'id="sign-in"' in visitor.get("/").text and "csrf-token" not in visitor.get("/").text


def test_members_see_their_private_spaces_with_a_badge_and_their_own_tabs(app: FastAPI) -> None:
    with browser(app) as alice:
        sign_in(alice, "alice")
        home = alice.get("/").text
        assert sorted(cards(home)) == ["alice/diary", "bob/public", "team/board"]
        assert home.count("data-private") == 2 and 'id="who"' in home and ">alice<" in home
        assert cards(alice.get("/?owner=alice").text) == ["alice/diary"]  # my spaces
        assert 'data-org="team"' in home and cards(alice.get("/_platform/cards?owner=team").text) == ["team/board"]
        page = alice.get("/alice/diary")
        assert page.status_code == 200 and 'id="private"' in page.text and 'href="/alice/diary/settings"' in page.text
        assert 'id="settings"' not in alice.get("/bob/public").text  # not hers to change
    with browser(app) as bob:
        sign_in(bob, "bob")
        assert cards(bob.get("/").text) == ["bob/public"]
        assert bob.get("/team/board").status_code == 404


def test_a_wrong_password_or_unknown_user_gets_the_page_again_and_no_cookie(visitor: TestClient) -> None:
    for user, password in (("alice", "not her password"), ("nobody", "whatever it is")):
        answer = visitor.post("/login", data={"method": "password", "user": user, "password": password})
        assert answer.status_code == 401 and WRONG_PASSWORD in answer.text
        assert "set-cookie" not in answer.headers and password not in answer.text
    token = visitor.post("/login", data={"method": "token", "token": "spt_made_up"})
    assert token.status_code == 401 and "not valid" in token.text


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(app: FastAPI) -> None:
    with browser(app) as plain:
        answer = plain.post("/login", data={"method": "password", "user": "alice", "password": f"{PASSWORD} alice",
                                            "next": "/alice/diary"})
        assert answer.headers["location"] == "/alice/diary"
        cookie = answer.headers["set-cookie"].lower()
        assert cookie.startswith("spaces_session=") and "httponly" in cookie and "samesite=lax" in cookie
        assert "path=/" in cookie and "secure" not in cookie
    with browser(app, "https://testserver") as tls:
        answer = tls.post("/login", data={"method": "password", "user": "alice", "password": f"{PASSWORD} alice"})
        assert "; secure" in answer.headers["set-cookie"].lower()


def test_sign_in_never_redirects_to_another_site() -> None:
    assert safe_next("/alice/diary?tab=1") == "/alice/diary?tab=1"
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "evil", "", None):
        assert safe_next(target) == "/"


def test_a_token_signs_in_but_a_read_token_does_not(platform: Platform, app: FastAPI) -> None:
    _, write = platform.accounts.create_token("bob", "laptop", "write")
    _, read = platform.accounts.create_token("bob", "dashboard", "read")
    with browser(app) as client:
        refused = client.post("/login", data={"method": "token", "token": read})
        assert refused.status_code == 401 and "read-only token" in refused.text
        assert client.post("/login", data={"method": "token", "token": write}).status_code == 303
        assert 'id="who"' in client.get("/").text


def test_a_form_from_another_site_can_neither_sign_in_nor_sign_out(app: FastAPI) -> None:
    with browser(app) as client:
        forged = client.post("/login", headers={"Origin": "http://127.0.0.1:9999"},
                             data={"method": "password", "user": "bob", "password": f"{PASSWORD} bob"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers
        csrf = sign_in(client, "alice")
        assert client.post("/logout", data={"csrf": "guessed"}).status_code == 403
        assert client.post("/api/spaces/alice/diary/pause").status_code == 401  # a write without the header
        assert 'id="who"' in client.get("/").text  # still signed in
        out = client.post("/logout", data={"csrf": csrf})
        assert out.status_code == 303 and 'spaces_session=""' in out.headers["set-cookie"]
        assert cards(client.get("/").text) == ["bob/public"]


def test_likes_count_once_per_signed_in_user(app: FastAPI) -> None:
    for _ in range(2):  # two browsers of the same person
        with browser(app) as client:
            csrf = sign_in(client, "alice")
            liked = client.post("/api/spaces/bob/public/like", json={"liked": True}, headers={"X-CSRF-Token": csrf})
            assert liked.status_code == 200, liked.text
            assert 'aria-pressed="true"' in client.get("/bob/public").text
    assert liked.json()["likes"] == 1
    assert "spaces_liker" not in liked.headers.get("set-cookie", "")  # her name never outlives the session
    with browser(app) as forger:  # a cookie that claims to be alice takes back nothing of hers
        forger.cookies.set("spaces_liker", "user:alice")
        assert forger.post("/api/spaces/bob/public/like", json={"liked": False}).json()["likes"] == 1
        assert 'aria-pressed="false"' in forger.get("/bob/public").text


def test_the_settings_page_is_for_writers_and_never_shows_a_secret(platform: Platform, app: FastAPI) -> None:
    platform.secrets.set_secret("alice/diary", "DIARY_KEY", "s3cr3t-value-42")
    platform.secrets.set_variable("alice/diary", "MOOD", "sunny")
    with browser(app) as client:
        assert client.get("/bob/public/settings").headers["location"] == "/login?next=%2Fbob%2Fpublic%2Fsettings"
        sign_in(client, "alice")
        page = client.get("/alice/diary/settings")
        assert page.status_code == 200 and "DIARY_KEY" in page.text and "s3cr3t-value-42" not in page.text
        assert "MOOD" in page.text and "sunny" in page.text and "SPACES_SLEEP_AFTER_S" in page.text
        assert page.headers["cache-control"] == "no-store"
        refused = client.get("/bob/public/settings")
        assert refused.status_code == 403 and "not an organization" not in refused.text
        assert "neither your namespace" in refused.text


def test_passwords_are_set_by_admins_or_their_owner_and_never_echoed(platform: Platform, app: FastAPI) -> None:
    _, admin = platform.accounts.create_token(_admin(platform), "admin", "write")
    _, bob = platform.accounts.create_token("bob", "laptop", "write")
    with browser(app) as client:
        def put(user: str, token: str, password: str) -> Any:
            return client.put(f"/api/users/{user}/password", json={"password": password},
                              headers={"Authorization": f"Bearer {token}"})
        assert put("bob", bob, "short").status_code == 400 and "short" not in put("bob", bob, "short").text
        assert put("alice", bob, "bob sets alice's password").status_code == 403
        assert put("bob", bob, "a new passphrase for bob").status_code == 200
        assert put("alice", admin, "the admin resets alice").status_code == 200
        signed = client.post("/login", data={"method": "password", "user": "bob",
                                             "password": "a new passphrase for bob"})
        assert signed.status_code == 303
    assert (platform.accounts.password_hash("alice") or "").startswith("$argon2id$")


def _admin(platform: Platform) -> str:
    return next(u.name for u in platform.accounts.users() if u.admin)
