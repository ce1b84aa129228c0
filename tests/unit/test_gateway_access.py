"""What of a visitor's request reaches an app: never a credential for the platform itself (pure)."""

from __future__ import annotations

from spaces_runtime.gateway.access import for_the_app


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
    seen = headers_for_app((b"cookie", b"spaces_session=abc; theme=dark; spaces_share_bob_vault=xyz"))
    assert seen == [(b"cookie", b"theme=dark")]
