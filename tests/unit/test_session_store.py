"""Server-side web sessions (auth/sessions.py) on a real SQLite file with a clock the test moves: a session ends
when signed out, after its idle time, after its absolute lifetime, with "sign out everywhere", and with the token it
was signed in with; a pass nonce is good once; the trusted proxies setting refuses what is not an address."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from spaces_runtime.auth.sessions import Lifetimes, Sessions
from spaces_runtime.config import Settings


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def sessions(tmp_path: Path, clock: list[float]) -> Sessions:
    return Sessions(tmp_path / "spaces.db", Lifetimes(idle_s=100, absolute_s=1000), clock=lambda: clock[0])


def test_a_session_lasts_while_used_and_ends_after_its_idle_time(sessions: Sessions, clock: list[float]) -> None:
    secret, csrf = sessions.start("alice", "Firefox", "10.0.0.9")
    for _ in range(5):  # used every 90 s: 450 s in all, well past the idle time
        clock[0] += 90
        live = sessions.live(secret)
        assert live is not None and live.user == "alice" and live.csrf == csrf
    clock[0] += 101
    assert sessions.live(secret) is None
    assert sessions.of("alice") == []


def test_sessions_nobody_came_back_to_are_dropped(sessions: Sessions, clock: list[float], tmp_path: Path) -> None:
    sessions.start("alice", "forgotten")
    clock[0] += 101
    sessions.start("bob")
    with sqlite3.connect(tmp_path / "spaces.db") as db:
        assert [row[0] for row in db.execute("SELECT user FROM sessions")] == ["bob"]


def test_a_session_ends_at_its_absolute_lifetime_even_when_used(sessions: Sessions, clock: list[float]) -> None:
    secret, _ = sessions.start("alice")
    while clock[0] < 1000 + 1000 - 60:
        clock[0] += 60
        assert sessions.live(secret) is not None
    clock[0] += 61
    assert sessions.live(secret) is None


def test_signing_out_one_and_everywhere(sessions: Sessions) -> None:
    laptop, _ = sessions.start("alice", "laptop")
    phone, _ = sessions.start("alice", "phone")
    bobs, _ = sessions.start("bob")
    assert [s.user_agent for s in sessions.of("alice")] == ["phone", "laptop"]
    assert sessions.end(laptop) and sessions.live(laptop) is None
    assert not sessions.end(laptop), "ending twice ends nothing"
    assert sessions.live(phone) is not None
    sessions.start("alice", "tablet")
    kept = sessions.live(phone)
    assert kept is not None and sessions.end_all("alice", keep=kept.id) == 1
    assert sessions.live(phone) is not None
    assert sessions.end_all("alice") == 1 and sessions.live(phone) is None
    assert sessions.live(bobs) is not None, "alice signing out everywhere leaves bob signed in"


def test_revoking_the_token_a_browser_signed_in_with_ends_that_session(sessions: Sessions) -> None:
    with_token, _ = sessions.start("alice", token_id=7)
    with_password, _ = sessions.start("alice")
    assert sessions.end_by_token(7) == 1
    assert sessions.live(with_token) is None and sessions.live(with_password) is not None


def test_the_database_keeps_only_a_hash_of_the_session_id(sessions: Sessions, tmp_path: Path) -> None:
    secret, _ = sessions.start("alice")
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path


def test_a_nonce_is_good_once_until_it_expires(sessions: Sessions, clock: list[float]) -> None:
    assert sessions.use_once("pass:abc", clock[0] + 120)
    assert not sessions.use_once("pass:abc", clock[0] + 120)
    assert sessions.use_once("pass:other", clock[0] + 120)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert Settings(trusted_proxies="127.0.0.1, 10.0.0.0/8,::1").trusted_proxies == ["127.0.0.1", "10.0.0.0/8",
                                                                                      "::1"]
    assert Settings().trusted_proxies == []
    with pytest.raises(ValidationError, match="'proxy.local' is not an IP address or a CIDR"):
        Settings(trusted_proxies="proxy.local")
