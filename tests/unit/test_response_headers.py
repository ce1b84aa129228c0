"""README custom_headers and disable_embedding → the headers the gateway puts on an app's responses (pure)."""

from spaces_runtime.deploy.targets import response_headers
from spaces_runtime.gateway.targets import ResponseHeaders


def test_the_three_cross_origin_headers_hugging_face_allows_are_applied_any_case() -> None:
    headers = response_headers({"custom_headers": {
        "Cross-Origin-Embedder-Policy": "require-corp", "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "cross-origin"}})
    assert headers.replace == (("cross-origin-embedder-policy", "require-corp"),
                               ("cross-origin-opener-policy", "same-origin"),
                               ("cross-origin-resource-policy", "cross-origin"))
    assert headers.add == ()


def test_other_names_and_values_that_would_start_a_new_header_are_not_applied() -> None:
    headers = response_headers({"custom_headers": {
        "set-cookie": "session=stolen", "x-frame-options": "ALLOWALL",
        "cross-origin-opener-policy": "same-origin\r\nSet-Cookie: a=b"}})
    assert not headers


def test_disable_embedding_adds_a_frame_ancestors_policy_for_the_platforms_own_page_only() -> None:
    headers = response_headers({"disable_embedding": True})
    assert headers.add == (("content-security-policy", "frame-ancestors 'self'"),)
    assert not response_headers({"disable_embedding": False}) and not response_headers({})


def test_applied_headers_replace_the_apps_own_of_that_name_and_keep_the_rest() -> None:
    policy = ResponseHeaders(replace=(("cross-origin-opener-policy", "same-origin"),),
                             add=(("content-security-policy", "frame-ancestors 'self'"),))
    app = [(b"content-type", b"text/html"), (b"Cross-Origin-Opener-Policy", b"unsafe-none"),
           (b"content-security-policy", b"script-src 'self'"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    assert policy.apply(app) == [
        (b"content-type", b"text/html"), (b"content-security-policy", b"script-src 'self'"),
        (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"content-security-policy", b"frame-ancestors 'self'"),  # beside the app's policy: both are enforced
    ]
    assert ResponseHeaders().apply(app) is app
