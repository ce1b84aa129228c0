"""What of a visitor's request reaches an app: never a credential for the platform itself; which requests are
a browser's page visits (sent to the app's own origin) and which an API client's; the headers an app is served
with on each link form; member passes and the sign-in throttle (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.auth.passes import PASS_COOKIE_S, PASS_LINK_S, Passes
from spaces_runtime.auth.signing import Signer
from spaces_runtime.auth.throttle import Limits, SignInThrottle
from spaces_runtime.config import Settings
from spaces_runtime.gateway.access import (
    AppOrigins,
    app_cookie,
    app_origins,
    as_served,
    for_the_app,
    is_page_visit,
    is_top_level_visit,
)
from spaces_runtime.gateway.routes import Route
from spaces_runtime.gateway.targets import Pending, ResponseHeaders, StaticSite, Upstream


def headers_for_app(*headers: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return for_the_app({"type": "http", "headers": list(headers)})["headers"]


def test_a_platform_token_never_reaches_the_app() -> None:
    seen = headers_for_app((b"authorization", b"Bearer spt_secret"), (b"x-hf-authorization", b"Bearer spt_other"),
                           (b"accept", b"*/*"))
    assert seen == [(b"accept", b"*/*")]


def test_the_apps_own_authorization_passes() -> None:
    assert headers_for_app((b"authorization", b"Bearer my-apps-own-key")) == [(b"authorization",
                                                                               b"Bearer my-apps-own-key")]
    assert headers_for_app((b"authorization", b"Basic dXNlcjpwYXNz")) == [(b"authorization", b"Basic dXNlcjpwYXNz")]


def test_the_platforms_cookies_are_removed_and_the_apps_kept() -> None:
    seen = headers_for_app((b"cookie", b"spaces_session=abc; theme=dark; spaces_share_bob_vault=xyz; "
                                       b"spaces_pass_bob_vault=p"))
    assert seen == [(b"cookie", b"theme=dark")]
    over_https = headers_for_app((b"cookie", b"__Host-spaces_session=abc; theme=dark; __Host-spaces_pass_bob_v=p"))
    assert over_https == [(b"cookie", b"theme=dark")], "the __Host- names are the platform's too"


def visit(*headers: tuple[str, str], kind: str = "http") -> bool:
    return is_page_visit({"type": kind, "headers": [(k.encode(), v.encode()) for k, v in headers]})


def test_a_browsers_navigations_are_page_visits_whatever_the_method() -> None:
    assert visit(("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document"))
    assert visit(("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe"))
    assert visit(("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "object"))  # <object> renders a document too
    assert visit(("accept", "text/html,application/xhtml+xml"))  # a browser without fetch metadata


def test_api_clients_and_a_pages_own_requests_are_not_page_visits() -> None:
    assert not visit(("accept", "*/*"))  # gradio_client, curl, huggingface_hub
    assert not visit(("accept", "text/html"), ("authorization", "Bearer spt_x"))  # a script with a token
    assert not visit(("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty"), ("accept", "text/html"))
    assert not visit(("sec-fetch-mode", "navigate"), kind="websocket")


def test_only_a_tabs_own_visit_is_sent_for_a_pass_never_a_frames() -> None:
    def top(*headers: tuple[str, str]) -> bool:
        return is_top_level_visit({"type": "http", "headers": [(k.encode(), v.encode()) for k, v in headers]})

    assert top(("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document"))
    assert top(("accept", "text/html"))
    assert not top(("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe"))


ORIGINS = app_origins(True, "localhost:7000", 7000, None)
PATH = Route("alice", "demo", "/", via_host=False)
HOST = Route("alice", "demo", "/", via_host=True)


def test_host_links_serve_browsers_that_came_by_the_public_host() -> None:
    def scope(host: str) -> dict[str, object]:
        return {"type": "http", "headers": [(b"host", host.encode())]}

    assert ORIGINS.apply_to(scope("localhost:7000")) and ORIGINS.apply_to(scope("127.0.0.1:7000"))
    assert not ORIGINS.apply_to(scope("192.168.1.5:7000"))  # another name for it: as before
    named = app_origins(True, "spaces.example.com", 443, None)
    assert named.apply_to(scope("spaces.example.com")) and not named.apply_to(scope("127.0.0.1:443"))
    assert not AppOrigins(False, "localhost:7000").apply_to(scope("localhost:7000"))


def test_disable_embedding_lets_the_platforms_pages_frame_the_apps_own_origin() -> None:
    framed = as_served(Upstream("http://10.0.0.2:1", headers=ResponseHeaders(
        add=(("content-security-policy", "frame-ancestors 'self'"),))), HOST, ORIGINS, True)
    assert isinstance(framed, Upstream)
    (name, policy), = framed.headers.add
    assert name == "content-security-policy"
    assert policy.startswith("frame-ancestors 'self' http://localhost:7000 ")
    assert "http://127.0.0.1:7000" in policy.split() and "https://localhost:7000" in policy.split()


def test_on_the_path_form_an_app_never_becomes_a_page_of_the_platforms_origin() -> None:
    served = as_served(StaticSite(root=Path("/x")), PATH, ORIGINS, True)
    assert isinstance(served, StaticSite)
    assert served.headers.add == (("content-security-policy", "sandbox"),)
    assert as_served(Upstream("http://10.0.0.2:1"), HOST, ORIGINS, True).headers.add == ()  # its own origin: as it is
    assert as_served(Upstream("http://10.0.0.2:1"), PATH, AppOrigins(), False).headers.add == ()  # no host links
    assert as_served(Pending("BUILDING"), PATH, ORIGINS, True) == Pending("BUILDING")


def test_the_app_origin_cookie_is_partitioned_where_browsers_allow_it() -> None:
    def cookie(host: str, scheme: str = "http") -> str:
        return app_cookie({"type": "http", "scheme": scheme, "headers": [(b"host", host.encode())]}, "c", "v")

    assert cookie("alice-demo.localhost:7000").endswith("HttpOnly; SameSite=None; Secure; Partitioned")
    assert "Partitioned" in cookie("alice-demo.spaces.example.com", "https")
    assert cookie("alice-demo.spaces.example.com").endswith("HttpOnly; SameSite=Lax")  # plain HTTP: same site
    assert f"Max-Age={PASS_COOKIE_S}" in cookie("x.localhost") and "Domain" not in cookie("x.localhost")


@pytest.mark.parametrize(("public_host", "expected"), [(None, True), ("spaces.example.com", True),
                                                       ("10.1.2.3:7000", False), ("[::1]:7000", False)])
def test_host_links_are_assumed_unless_the_public_host_is_an_address(public_host: str | None,
                                                                     expected: bool) -> None:
    assert Settings(public_host=public_host).host_links_available is expected
    assert Settings(public_host=public_host, host_links=not expected).host_links_available is (not expected)


def test_a_pass_opens_one_space_for_one_member_and_a_link_pass_is_no_cookie() -> None:
    passes = Passes(Signer(b"k" * 32, "session").for_purpose("pass"))
    link = passes.issue("alice/vault", "bob", "key1", now=1000)
    assert passes.check(link, "alice/vault", "key1", "link", now=1000 + PASS_LINK_S - 1).user == "bob"
    assert "expired" in passes.check(link, "alice/vault", "key1", "link", now=1000 + PASS_LINK_S + 1).problem
    assert passes.check(link, "alice/other", "key1", "link", now=1000).user is None
    assert passes.check(link, "alice/vault", "key2", "link", now=1000).user is None  # share key rotated
    assert passes.check(link, "alice/vault", "key1", "cookie", now=1000).user is None
    cookie = passes.issue("alice/vault", "bob", "key1", "cookie", now=1000)
    assert passes.check(cookie, "alice/vault", "key1", "link", now=1000).user is None
    assert passes.check(cookie, "alice/vault", "key1", "cookie", now=1000 + PASS_COOKIE_S - 1).user == "bob"
    share_signer = Signer(b"k" * 32, "share")  # a share link's signature never passes for a pass
    assert passes.check(share_signer.sign({"s": "alice/vault", "u": "bob", "k": "link", "e": 2000}, "key1"),
                        "alice/vault", "key1", "link", now=1000).user is None


def test_failed_sign_ins_are_limited_per_account_and_per_address() -> None:
    now = [0.0]
    throttle = SignInThrottle(Limits(per_account=3, per_address=5, window_s=60), clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("alice", "10.0.0.9") == 0
        throttle.failed("alice", "10.0.0.9")
        now[0] += 1
    assert throttle.retry_after("Alice", "10.0.0.7") == 57  # the account, from anywhere: 60 s after its 1st failure
    assert throttle.retry_after("bob", "10.0.0.9") == 0  # another account from that address: 2 more tries
    throttle.failed("bob", "10.0.0.9")
    throttle.failed("carol", "10.0.0.9")
    assert throttle.retry_after("dave", "10.0.0.9") == 57
    assert throttle.retry_after("", "10.0.0.9") == 57  # a token sign-in counts per address
    now[0] = 60.5
    assert throttle.retry_after("alice", "10.0.0.7") == 0  # the first failure left the window
