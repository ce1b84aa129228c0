"""Git hosting's pure decisions: which requests on an app's link are git's, whose token a request carries, who
may fetch or push, and reading git http-backend's CGI head."""

import base64

import pytest

from spaces_runtime.auth.principal import ANONYMOUS, Principal
from spaces_runtime.hub.git import (
    GitRequest,
    git_request,
    main_update,
    parse_updates,
    refusal,
    split_cgi_head,
    token_of,
)


def test_git_clone_and_push_requests_are_told_apart_from_the_apps() -> None:
    refs = git_request("GET", "/spaces/alice/demo/info/refs", "service=git-upload-pack")
    assert refs == GitRequest("alice", "demo", "refs", "git-upload-pack")
    assert refs.path_info == "/alice/demo.git/info/refs" and not refs.writes
    push = git_request("POST", "/spaces/alice/demo.git/git-receive-pack", "")
    assert push is not None and push.writes and push.path_info == "/alice/demo.git/git-receive-pack"
    lfs = git_request("POST", "/spaces/alice/demo.git/info/lfs/objects/batch", "")
    assert lfs is not None and lfs.kind == "lfs" and lfs.rest == "objects/batch"


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/spaces/alice/demo/", ""),
    ("GET", "/spaces/alice/demo/info/refs", ""),  # the dumb protocol, or the app's own page of that name
    ("GET", "/spaces/alice/demo/info/refs", "service=git-evil"),
    ("GET", "/spaces/alice/demo/git-upload-pack", ""),  # only POST is git's
    ("POST", "/spaces/alice/demo/api/predict", ""),
    ("GET", "/spaces/Alice/demo/info/refs", "service=git-upload-pack"),  # not a valid name
    ("GET", "/spaces/alice/../info/refs", "service=git-upload-pack"),
    ("GET", "/api/spaces/alice/demo/info/refs", "service=git-upload-pack"),
])
def test_everything_else_stays_the_apps(method: str, path: str, query: str) -> None:
    assert git_request(method, path, query) is None


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_token_is_the_basic_password_or_a_bearer_token() -> None:
    assert token_of(basic("alice", "hf_secret")) == "hf_secret"
    assert token_of(basic("hf_secret", "")) == "hf_secret"  # https://TOKEN@host/… puts it in the user name
    assert token_of("Bearer hf_secret") == "hf_secret"
    assert token_of(None) is None
    assert token_of("Basic !!!not-base64") == "" and token_of("Digest x") == ""


ALICE = Principal("alice")
BOB = Principal("bob")
READER = Principal("alice", cap="read")


def test_public_spaces_are_cloned_by_anyone_and_pushed_by_their_writers() -> None:
    assert refusal(ANONYMOUS, "alice/demo", False, writes=False) is None
    assert refusal(ALICE, "alice/demo", False, writes=True) is None
    anonymous_push = refusal(ANONYMOUS, "alice/demo", False, writes=True)
    assert anonymous_push is not None and anonymous_push.asks_for_credentials  # git then asks for the token
    by_bob = refusal(BOB, "alice/demo", False, writes=True)
    assert by_bob is not None and by_bob.status == 403
    read_token = refusal(READER, "alice/demo", False, writes=True)
    assert read_token is not None and read_token.status == 403 and "read-only" in read_token.message


def test_private_and_missing_spaces_ask_strangers_to_sign_in_and_are_404_to_others() -> None:
    for private in (True, None):  # None: no such space; the answer must not tell the two apart
        stranger = refusal(ANONYMOUS, "alice/secret", private, writes=False)
        assert stranger is not None and stranger.status == 401
        by_bob = refusal(BOB, "alice/secret", private, writes=False)
        assert by_bob is not None and by_bob.status == 404
    assert refusal(ALICE, "alice/secret", True, writes=False) is None
    assert refusal(ALICE, "alice/new", None, writes=True) is None  # a push creates the space
    by_bob = refusal(BOB, "alice/new", None, writes=True)
    assert by_bob is not None and by_bob.status == 404


def test_the_cgi_head_gives_status_and_headers_and_keeps_the_body() -> None:
    assert split_cgi_head(b"Content-Type: text/plain\r\n") is None
    head = split_cgi_head(b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno")
    assert head == (403, [(b"content-type", b"text/plain")], b"no")
    assert split_cgi_head(b"Expires: 0\n\n001e# service") == (200, [(b"expires", b"0")], b"001e# service")


def test_only_main_deploys_from_a_push() -> None:
    zero, a, b = "0" * 40, "a" * 40, "b" * 40
    updates = parse_updates([f"{zero} {a} refs/heads/feature", f"{a} {b} refs/heads/main", "garbage"])
    assert len(updates) == 2
    main = main_update(updates)
    assert main is not None and main.new == b and not main.deletes
    assert main_update(parse_updates([f"{zero} {a} refs/tags/v1"])) is None
