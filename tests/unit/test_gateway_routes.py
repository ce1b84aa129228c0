"""Which app a link opens, and the path the app receives: both link forms, redirects, ambiguous hosts."""

import pytest

from spaces_runtime.gateway.routes import Route, resolve, split_subdomain

PUBLIC = "localhost:7000"


def test_path_form_opens_the_app_and_keeps_the_rest_of_the_path() -> None:
    route = resolve("localhost:7000", "/spaces/alice/demo/gradio_api/info", PUBLIC)
    assert route == Route("alice", "demo", "/gradio_api/info", via_host=False)
    assert route.upstream_path(forward_prefix=True) == "/spaces/alice/demo/gradio_api/info"
    assert route.upstream_path(forward_prefix=False) == "/gradio_api/info"


def test_path_form_without_trailing_slash_redirects_to_it() -> None:
    route = resolve("localhost:7000", "/spaces/alice/demo", PUBLIC)
    assert route is not None and route.redirect == "/spaces/alice/demo/"


def test_path_form_works_on_any_host() -> None:
    route = resolve("192.168.1.20:7000", "/spaces/alice/demo/", PUBLIC)
    assert route is not None and (route.owner, route.name, route.rest) == ("alice", "demo", "/")


@pytest.mark.parametrize("path", ["/", "/api/spaces", "/spaces", "/spaces/alice", "/spaces/Alice/demo/",
                                  "/spaces/-x/demo/", "/spaces/alice/" + "n" * 97 + "/"])
def test_platform_paths_and_invalid_names_are_not_app_links(path: str) -> None:
    assert resolve("localhost:7000", path, PUBLIC) is None


def test_host_form_sends_every_path_on_that_host_to_the_app() -> None:
    route = resolve("alice-demo.localhost:7000", "/assets/index.js", PUBLIC)
    assert route is not None and route.via_host
    assert (route.owner, route.name) == ("alice", "demo")
    assert route.upstream_path(forward_prefix=True) == "/spaces/alice/demo/assets/index.js"
    assert route.upstream_path(forward_prefix=False) == "/assets/index.js"


def test_host_form_accepts_the_prefix_that_gradio_puts_in_its_links() -> None:
    route = resolve("alice-demo.localhost:7000", "/spaces/alice/demo/config", PUBLIC)
    assert route is not None and route.rest == "/config"
    assert route.upstream_path(forward_prefix=True) == "/spaces/alice/demo/config"


def test_host_form_ignores_ports_and_case() -> None:
    route = resolve("Alice-Demo.LOCALHOST", "/", PUBLIC)
    assert route is not None and (route.owner, route.name) == ("alice", "demo")
    assert resolve("alice-demo.example.com", "/", "example.com:443") is not None


def test_host_form_lists_every_reading_of_a_dashed_label_leftmost_first() -> None:
    assert split_subdomain("alice-my-app") == (("alice", "my-app"), ("alice-my", "app"))
    route = resolve("alice-my-app.localhost:7000", "/", PUBLIC)
    assert route is not None and route.candidates[0] == ("alice", "my-app")
    assert route.with_app("alice-my", "app").prefix == "/spaces/alice-my/app"


def test_the_platform_host_itself_and_foreign_hosts_are_not_host_links() -> None:
    assert resolve("localhost:7000", "/", PUBLIC) is None
    assert resolve("alice-demo.example.org", "/", PUBLIC) is None
    assert resolve("nodash.localhost:7000", "/", PUBLIC) is None
