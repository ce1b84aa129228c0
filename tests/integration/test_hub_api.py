"""huggingface_hub, gradio_client and `hf` against a real `spaces serve`, as Hugging Face users run them with the
platform as their endpoint: create a space, upload a folder and reach the app through its link, read its files
back, run its lifecycle, duplicate, move and delete it; a private space and someone else's space from the side of
the person each rule must stop; what the platform does not serve answers 501 at once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, SpaceHardware
from huggingface_hub import errors as hub_errors
from huggingface_hub.hf_api import RepoFile
from polling import wait_until

from spaces_harness import Platform, gradio_readme, write_app

APP = """\
import os

import gradio as gr


def greet(name: str) -> str:
    return f"{os.environ.get('GREETING', 'hello')} {name}{os.environ.get('PUNCTUATION', '')}"


gr.Interface(greet, "text", "text", api_name="predict").launch()
"""
SLEEP_AFTER_S = 20  # every app of this module's platform sleeps after this long without a visit
BIN = Path(sys.executable).parent
CLIENT_BY_ID = """\
import sys
from gradio_client import Client

space, token, name = sys.argv[1:4]
client = Client(space, token=token or None, verbose=False)
print("ANSWER", client.predict(name, api_name="/predict"))
"""


class Hub:
    def __init__(self, platform: Platform, tmp: Path) -> None:
        self.platform = platform
        self.tmp = tmp
        self.tokens: dict[str, str] = {}

    def api(self, user: str | None) -> HfApi:
        return HfApi(endpoint=self.platform.url, token=self.tokens[user] if user else False)

    def env(self, user: str | None) -> dict[str, str]:
        """A Hugging Face user's shell with the platform as the endpoint."""
        return {**os.environ, "HF_ENDPOINT": self.platform.url, "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HOME": str(self.tmp / f"hf-home-{user}"), "HF_TOKEN": self.tokens[user] if user else "",
                "GRADIO_ANALYTICS_ENABLED": "False"}

    def client_by_id(self, space: str, user: str | None, name: str = "bob") -> subprocess.CompletedProcess[str]:
        """gradio_client.Client("owner/name") in a process of its own: huggingface_hub reads HF_ENDPOINT once, when
        it is imported."""
        return subprocess.run([sys.executable, "-c", CLIENT_BY_ID, space, self.tokens[user] if user else "", name],
                              env=self.env(user), capture_output=True, text=True, timeout=300)

    def stage(self, space: str, user: str = "alice") -> str:
        return str(self.api(user).get_space_runtime(space).stage)

    def wait_stage(self, space: str, stages: set[str], user: str = "alice", timeout: float = 600) -> str:
        return wait_until(lambda: (s := self.stage(space, user)) in stages and s, timeout,
                          f"{space} to reach {sorted(stages)} (log: {self.platform.log_path})", interval=0.5)

    def link(self, space: str) -> str:
        return f"{self.platform.url}/spaces/{space}/"

    def visit(self, space: str) -> None:
        """Open the app (which wakes it and keeps it awake for a while), then wait until it runs."""
        assert httpx.get(self.link(space), timeout=150).status_code == 200
        self.wait_stage(space, {"RUNNING"})


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("hub")
    platform = Platform(root / "data", env={"SPACES_RUNNER_ENABLED": "false",
                                            "SPACES_SLEEP_AFTER_S": str(SLEEP_AFTER_S)}).start()
    hub = Hub(platform, root)
    hub.tokens.update(platform.add_users("alice", "bob"))
    yield hub
    platform.stop()


@pytest.fixture(scope="module")
def hello(hub: Hub) -> str:
    """alice's public space, made the Hugging Face way: create_repo with a variable and a secret, then
    upload_folder; RUNNING."""
    api = hub.api("alice")
    url = api.create_repo("alice/hello", repo_type="space", space_sdk="gradio",
                          space_variables=[{"key": "GREETING", "value": "hi"}],
                          space_secrets=[{"key": "API_KEY", "value": "sk-never-copied"}])
    assert url.repo_id == "alice/hello" and url.repo_type == "space"
    assert api.list_repo_files("alice/hello", repo_type="space") == ["README.md"]
    folder = write_app(hub.tmp / "hello", {"README.md": gradio_readme("Hello"), "app.py": APP})
    commit = api.upload_folder(repo_id="alice/hello", repo_type="space", folder_path=folder,
                               commit_message="Add the app")
    assert len(commit.oid) == 40 and commit.commit_url.endswith(f"/spaces/alice/hello/commit/{commit.oid}")
    hub.wait_stage("alice/hello", {"RUNNING"}, timeout=900)
    return "alice/hello"


@pytest.mark.timeout(1200)
def test_upload_folder_runs_the_app_through_its_link(hub: Hub, hello: str) -> None:
    page = httpx.get(hub.link(hello), timeout=30)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    from gradio_client import Client

    assert Client(hub.link(hello), verbose=False).predict("bob", api_name="/predict") == "hi bob", \
        "the variable given to create_repo reaches the app"


def test_space_info_list_spaces_and_runtime_parse_as_the_hub_s(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    hub.visit(hello)
    info = api.space_info(hello)
    assert info.created_at is not None and info.created_at.year >= 2024, "an ISO date, parsed to a datetime"
    assert info.last_modified is not None and info.author == "alice" and info.sdk == "gradio"
    assert info.host == hub.link(hello) and info.subdomain == "alice-hello" and info.private is False
    assert info.card_data is not None and info.card_data.to_dict()["title"] == "Hello"
    assert sorted(s.rfilename for s in info.siblings or []) == ["README.md", "app.py"]
    assert info.runtime is not None and info.runtime.stage == "RUNNING" and info.runtime.hardware == "cpu-basic"
    assert info.sha is not None and len(info.sha) == 40
    listed = list(api.list_spaces(author="alice", search="HELL", sort="created_at", limit=10))
    assert [s.id for s in listed] == [hello] and listed[0].created_at == info.created_at
    assert list(api.list_spaces(author="nobody")) == []
    assert "cpu-upgrade" in [h.name for h in api.list_spaces_hardware()]
    ours = httpx.get(f"{hub.platform.url}/api/spaces/{hello}", timeout=10).json()
    assert isinstance(ours["created_at"], float) and ours["stage"] == "RUNNING" and ours["url"], \
        "the platform's own answer keeps its fields"


def test_gradio_client_reaches_a_space_by_its_id(hub: Hub, hello: str) -> None:
    done = hub.client_by_id(hello, "bob", "carol")
    assert done.returncode == 0 and "ANSWER hi carol" in done.stdout, done.stderr[-3000:]


def test_a_private_space_is_reached_by_its_members_and_missing_for_everyone_else(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    api.create_repo("alice/secret", repo_type="space", space_sdk="gradio", private=True)
    folder = write_app(hub.tmp / "secret", {"README.md": gradio_readme("Secret"), "app.py": APP})
    api.upload_folder(repo_id="alice/secret", repo_type="space", folder_path=folder)
    hub.wait_stage("alice/secret", {"RUNNING"})
    assert api.space_info("alice/secret").private is True
    done = hub.client_by_id("alice/secret", "alice")
    assert done.returncode == 0 and "ANSWER hello bob" in done.stdout, done.stderr[-3000:]
    for user in ("bob", None):
        with pytest.raises(hub_errors.RepositoryNotFoundError):
            hub.api(user).space_info("alice/secret")
        with pytest.raises(hub_errors.RepositoryNotFoundError):
            hub.api(user).list_repo_files("alice/secret", repo_type="space")
        assert "alice/secret" not in [s.id for s in hub.api(user).list_spaces()]
    assert "alice/secret" in [s.id for s in api.list_spaces()]
    api.auth_check("alice/secret", repo_type="space")
    with pytest.raises(hub_errors.RepositoryNotFoundError):
        hub.api("bob").auth_check("alice/secret", repo_type="space")
    refused = hub.client_by_id("alice/secret", "bob")
    assert refused.returncode != 0 and "ANSWER" not in refused.stdout
    assert httpx.get(hub.link("alice/secret"), timeout=10).status_code == 404
    api.update_repo_settings("alice/secret", private=False, repo_type="space")
    assert hub.api("bob").space_info("alice/secret").private is False
    api.update_repo_settings("alice/secret", visibility="private", repo_type="space")
    with pytest.raises(hub_errors.RepositoryNotFoundError):
        hub.api("bob").space_info("alice/secret")


def test_someone_else_s_space_cannot_be_changed(hub: Hub, hello: str) -> None:
    bob = hub.api("bob")
    for call in (lambda: bob.restart_space(hello), lambda: bob.pause_space(hello),
                 lambda: bob.set_space_sleep_time(hello, 60), lambda: bob.delete_repo(hello, repo_type="space"),
                 lambda: bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hello,
                                         repo_type="space")):
        with pytest.raises(hub_errors.HfHubHTTPError) as refused:
            call()
        assert refused.value.response.status_code == 403, refused.value
        assert "not the namespace of bob" in str(refused.value)
    with pytest.raises(hub_errors.HfHubHTTPError) as nobody:
        hub.api(None).restart_space(hello)
    assert nobody.value.response.status_code == 401
    assert hub.stage(hello) == "RUNNING" or hub.stage(hello) == "SLEEPING"
    assert "x.txt" not in hub.api("alice").list_repo_files(hello, repo_type="space")


def test_files_are_read_back_at_main_and_at_a_commit(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    sha = api.space_info(hello).sha
    assert sha is not None
    cache = hub.tmp / "cache"
    path = api.hf_hub_download(hello, "app.py", repo_type="space", cache_dir=cache)
    assert Path(path).read_text() == APP and sha in path
    snapshot = Path(api.snapshot_download(hello, repo_type="space", cache_dir=cache, revision=sha))
    assert sorted(p.name for p in snapshot.iterdir()) == ["README.md", "app.py"]
    entries = {e.path: e for e in api.list_repo_tree(hello, repo_type="space")}
    assert entries["app.py"].size == len(APP.encode())  # type: ignore[union-attr]
    assert api.file_exists(hello, "app.py", repo_type="space")
    assert not api.file_exists(hello, "nope.py", repo_type="space")
    with pytest.raises(hub_errors.EntryNotFoundError):
        api.hf_hub_download(hello, "nope.py", repo_type="space", cache_dir=cache)
    with pytest.raises(hub_errors.RevisionNotFoundError):
        api.list_repo_files(hello, repo_type="space", revision="f" * 40)
    assert [b.target_commit for b in api.list_repo_refs(hello, repo_type="space").branches] == [sha]
    [info] = api.get_paths_info(hello, ["app.py"], repo_type="space")
    assert info.path == "app.py"


@pytest.mark.timeout(900)
def test_a_commit_deploys_and_the_build_log_follow_ends_with_the_build(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    before = api.space_info(hello).sha
    commit = api.create_commit(hello, repo_type="space", commit_message="Shout", operations=[
        CommitOperationAdd("notes/todo.txt", b"shout\n"),
        CommitOperationAdd("app.py", APP.replace("{name}", "{name.upper()}").encode())], parent_commit=before)
    lines = list(api.fetch_space_logs(hello, build=True, follow=True))  # returns when the build ends
    assert any("deploying alice/hello" in line for line in lines), lines[-5:]
    assert hub.wait_stage(hello, {"RUNNING"}) == "RUNNING"
    assert api.space_info(hello).sha == commit.oid != before
    from gradio_client import Client

    assert Client(hub.link(hello), verbose=False).predict("bob", api_name="/predict") == "hi BOB"
    with pytest.raises(hub_errors.HfHubHTTPError) as stale:
        api.create_commit(hello, repo_type="space", commit_message="late", parent_commit=before,
                          operations=[CommitOperationDelete("notes/todo.txt")])
    assert stale.value.response.status_code == 409
    api.delete_file("notes/todo.txt", hello, repo_type="space")
    assert "notes/todo.txt" not in api.list_repo_files(hello, repo_type="space")
    started = time.monotonic()
    assert list(api.fetch_space_logs(hello)) is not None  # the run log without follow returns
    assert time.monotonic() - started < 60, "no hang"


def test_a_readme_the_builder_refuses_is_refused_before_the_upload(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    sha = api.space_info(hello).sha
    with pytest.raises(ValueError, match="gradoi"):
        api.upload_file(path_or_fileobj=b"---\nsdk: gradoi\n---\n", path_in_repo="README.md", repo_id=hello,
                        repo_type="space")
    assert api.space_info(hello).sha == sha


def test_lifecycle_sleep_time_and_hardware(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    hub.visit(hello)
    assert api.pause_space(hello).stage == "PAUSED"
    assert hub.stage(hello) == "PAUSED"
    runtime = api.restart_space(hello, factory_reboot=True)
    assert runtime.stage in ("BUILDING", "APP_STARTING", "RUNNING")
    hub.wait_stage(hello, {"RUNNING"})
    with pytest.warns(UserWarning, match="cpu-basic"):  # huggingface_hub's own note about free hardware
        assert api.set_space_sleep_time(hello, 3600).sleep_time == 3600
    assert api.get_space_runtime(hello).sleep_time == 3600, "stored"
    runtime = api.request_space_hardware(hello, SpaceHardware.CPU_UPGRADE)  # it restarts on that tier
    assert runtime.requested_hardware == "cpu-upgrade" and runtime.hardware in ("cpu-upgrade", None)
    hub.wait_stage(hello, {"RUNNING"})
    assert api.get_space_runtime(hello).hardware == "cpu-upgrade"
    with pytest.raises(hub_errors.BadRequestError, match="zero-a10g"):
        api.request_space_hardware(hello, SpaceHardware.ZERO_A10G)


def test_a_sleeping_space_wakes_for_gradio_client(hub: Hub, hello: str) -> None:
    with warnings.catch_warnings():  # huggingface_hub's own note about sleep times on free hardware
        warnings.simplefilter("ignore", UserWarning)
        hub.api("alice").set_space_sleep_time(hello, SLEEP_AFTER_S)  # the space's own sleep time puts it to sleep
    hub.wait_stage(hello, {"RUNNING"})
    hub.wait_stage(hello, {"SLEEPING"}, timeout=SLEEP_AFTER_S * 6)
    done = hub.client_by_id(hello, "alice", "sleepy")
    assert done.returncode == 0 and "answer hi sleepy" in done.stdout.lower(), done.stderr[-3000:]
    assert hub.stage(hello) == "RUNNING"


@pytest.mark.timeout(900)
def test_duplicate_copies_code_and_variables_never_secrets(hub: Hub, hello: str) -> None:
    bob = hub.api("bob")
    url = bob.duplicate_repo(hello, "bob/hello-copy", repo_type="space")
    assert url.repo_id == "bob/hello-copy"
    hub.wait_stage("bob/hello-copy", {"RUNNING"}, user="bob")
    assert bob.get_space_variables("bob/hello-copy")["GREETING"].value == "hi"
    assert bob.get_space_secrets("bob/hello-copy") == {}
    assert bob.list_repo_files("bob/hello-copy", repo_type="space") == \
        hub.api("alice").list_repo_files(hello, repo_type="space")
    with pytest.raises(hub_errors.HfHubHTTPError) as refused:
        hub.api("alice").restart_space("bob/hello-copy")
    assert refused.value.response.status_code == 403


@pytest.mark.timeout(900)
def test_move_and_delete(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    api.create_repo("alice/temp", repo_type="space", space_sdk="static", space_hardware=SpaceHardware.CPU_UPGRADE,
                    space_sleep_time=600, space_secrets=[{"key": "TOKEN", "value": "kept"}])
    runtime = api.get_space_runtime("alice/temp")
    assert (runtime.requested_hardware, runtime.sleep_time) == ("cpu-upgrade", 600)
    api.upload_file(path_or_fileobj=b"<h1>moved</h1>", path_in_repo="index.html", repo_id="alice/temp",
                    repo_type="space")
    hub.wait_stage("alice/temp", {"RUNNING"})
    api.move_repo("alice/temp", "alice/renamed", repo_type="space")
    with pytest.raises(hub_errors.RepositoryNotFoundError):
        api.space_info("alice/temp")
    hub.wait_stage("alice/renamed", {"RUNNING"})
    assert "moved" in httpx.get(hub.link("alice/renamed"), timeout=10).text
    assert list(api.get_space_secrets("alice/renamed")) == ["TOKEN"], "a move keeps the secrets"
    assert api.get_space_runtime("alice/renamed").sleep_time == 600, "and the Hub settings"
    api.delete_repo("alice/renamed", repo_type="space")
    with pytest.raises(hub_errors.RepositoryNotFoundError):
        api.space_info("alice/renamed")
    api.delete_repo("alice/renamed", repo_type="space", missing_ok=True)
    with pytest.raises(hub_errors.HfHubHTTPError) as again:
        api.create_repo("alice/hello", repo_type="space", space_sdk="gradio")
    assert again.value.response.status_code == 409
    assert api.create_repo("alice/hello", repo_type="space", space_sdk="gradio", exist_ok=True).repo_id == hello


def test_likes(hub: Hub, hello: str) -> None:
    liked = httpx.post(f"{hub.platform.url}/api/spaces/{hello}/like", timeout=10,
                       headers={"Authorization": f"Bearer {hub.tokens['bob']}"})
    assert liked.status_code == 200 and hub.api("bob").space_info(hello).likes == 1
    hub.api("bob").unlike(hello, repo_type="space")
    assert hub.api("bob").space_info(hello).likes == 0


def test_what_is_not_a_space_answers_501_at_once(hub: Hub, hello: str) -> None:
    api = hub.api("alice")
    calls = [lambda: api.model_info("alice/model"), lambda: list(api.list_models(limit=1)),
             lambda: api.dataset_info("alice/data"), lambda: api.create_repo("alice/model"),
             lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hello,
                                     repo_type="space", create_pr=True)]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(hub_errors.HfHubHTTPError) as refused:
            call()
        assert refused.value.response.status_code == 501, refused.value
        assert time.monotonic() - started < 30, "answered, not retried"
    assert "serves Spaces only" in str(_refusal(api))
    # a model file: hf_hub_download reads any answer but "not found" as "the Hub is unreachable" and says so;
    # the 501 that says why is the cause it chains
    with pytest.raises(hub_errors.LocalEntryNotFoundError) as download:
        api.hf_hub_download("alice/model", "config.json", cache_dir=hub.tmp / "cache")
    cause = download.value.__cause__
    assert isinstance(cause, hub_errors.HfHubHTTPError) and cause.response.status_code == 501
    assert "serves Spaces only" in str(cause)


def _refusal(api: HfApi) -> Exception:
    try:
        api.model_info("alice/model")
    except hub_errors.HfHubHTTPError as exc:
        return exc
    raise AssertionError("model_info did not fail")


def test_a_file_in_lfs_reads_as_its_object(hub: Hub, hello: str) -> None:
    """A file whose bytes were pushed to the space's LFS store (as git-lfs does) and committed as a pointer: the
    tree shows its object, and a download gets its bytes."""
    weights = bytes(range(256)) * 64
    oid = hashlib.sha256(weights).hexdigest()
    stored = httpx.put(f"{hub.platform.url}/spaces/{hello}.git/info/lfs/objects/{oid}", content=weights,
                       headers={"Authorization": f"Bearer {hub.tokens['alice']}"}, timeout=30)
    assert stored.status_code == 200, stored.text
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(weights)}\n"
    api = hub.api("alice")
    api.upload_file(path_or_fileobj=pointer.encode(), path_in_repo="weights.bin", repo_id=hello, repo_type="space")
    [entry] = [e for e in api.list_repo_tree(hello, repo_type="space") if e.path == "weights.bin"]
    assert isinstance(entry, RepoFile) and entry.lfs is not None
    assert (entry.size, entry.lfs.sha256) == (len(weights), oid)
    path = api.hf_hub_download(hello, "weights.bin", repo_type="space", cache_dir=hub.tmp / "cache")
    assert Path(path).read_bytes() == weights
    hub.wait_stage(hello, {"RUNNING"})


def test_hf_upload_from_the_command_line(hub: Hub, hello: str) -> None:
    folder = write_app(hub.tmp / "extra", {"extra.txt": "from hf upload\n"})
    done = subprocess.run([str(BIN / "hf"), "upload", hello, str(folder / "extra.txt"), "extra.txt",
                           "--repo-type", "space"], env=hub.env("alice"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "extra.txt" in hub.api("alice").list_repo_files(hello, repo_type="space")
    hub.wait_stage(hello, {"RUNNING"})
