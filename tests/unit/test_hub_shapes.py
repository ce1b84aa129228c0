"""The Hub API's shapes, read back by the real huggingface_hub: what it parses from our answers (dates, runtime,
files, hardware), the commit payload it writes parsed by ours, and the exception classes it raises on our errors
(pure: no server, huggingface_hub's own parsers and payload writer)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, SpaceInfo, SpaceRuntime
from huggingface_hub import errors as hub_errors
from huggingface_hub._commit_api import _prepare_commit_payload
from huggingface_hub.hf_api import JobHardwareInfo, RepoFile, RepoFolder
from huggingface_hub.utils import hf_raise_for_status
from huggingface_hub.utils.sha import git_hash

from builder import spec as build_spec
from spaces_runtime.errors import ForbiddenError, NoAppFileError, NotFoundError, UploadError
from spaces_runtime.hub import shapes
from spaces_runtime.hub.apierrors import EntryNotFoundError, NotSupportedError, RevisionNotFoundError, error_headers
from spaces_runtime.hub.lfs import Pointer
from spaces_runtime.hub.ndjson import AddFile, DeleteFile, DeleteFolder, Header, clean_path, parse_line
from spaces_runtime.hub.tree import Blob, Tree
from spaces_runtime.stages import Stage
from spaces_runtime.store import SpaceRecord
from spaces_runtime.supervisor.tiers import TIERS

PLACE = shapes.Place(base_url="http://127.0.0.1:7000/", public_host="localhost:7000")
MACHINE = shapes.Machine(hardware="cpu-basic", sleep_after_s=48 * 3600)
INSTANCE = {"backend": "process", "backend_ref": "123", "upstream": "http://10.213.0.2:7860", "started_at": 1.0}


def record(**fields: object) -> SpaceRecord:
    base: dict[str, object] = {"id": "alice/demo", "owner": "alice", "name": "demo", "stage": Stage.RUNNING,
                               "card": {"sdk": "gradio", "title": "Demo", "color_from": "red", "tags": ["nlp"]},
                               "created_at": 1_700_000_000.5, "updated_at": 1_700_000_100.0, "likes": 3}
    return SpaceRecord(**{**base, **fields})  # type: ignore[arg-type]


def answer(rec: SpaceRecord, state: shapes.HubState = shapes.HubState(), hub_client: bool = True,
           instance: dict[str, object] | None = INSTANCE) -> dict[str, object]:
    run = shapes.runtime(rec, state, MACHINE, PLACE.public_host, instance)
    hub = shapes.space_fields(rec, state, "a" * 40, PLACE, run, [{"rfilename": "app.py"}])
    view = {"id": rec.id, "stage": rec.stage.value, "created_at": rec.created_at, "url": "http://x/"}
    return shapes.merged(view, hub, hub_client)


def test_space_info_parses_with_dates_runtime_and_the_link_gradio_client_opens() -> None:
    info = SpaceInfo(**answer(record()))
    assert info.created_at == datetime.fromisoformat("2023-11-14T22:13:20.500+00:00")
    assert info.last_modified is not None and info.last_modified > info.created_at
    assert info.runtime is not None and info.runtime.stage == "RUNNING"
    assert (info.runtime.hardware, info.runtime.requested_hardware, info.runtime.sleep_time) == \
        ("cpu-basic", "cpu-basic", 48 * 3600)
    assert info.host == "http://127.0.0.1:7000/spaces/alice/demo/"  # a trailing slash: the client urljoins on it
    assert info.subdomain == "alice-demo" and info.author == "alice" and info.sdk == "gradio"
    assert info.card_data is not None and info.card_data.to_dict()["colorFrom"] == "red"
    assert info.siblings is not None and info.siblings[0].rfilename == "app.py"
    assert info.likes == 3 and info.sha == "a" * 40


def test_the_platform_keeps_its_own_fields_and_a_hub_client_its_datetime() -> None:
    ours = answer(record(), hub_client=False)
    assert ours["created_at"] == 1_700_000_000.5 and ours["url"] == "http://x/" and ours["createdAt"]
    assert "created_at" not in answer(record())  # SpaceInfo would copy the float over its datetime


def test_a_requested_tier_and_sleep_time_are_reported_and_a_stopped_space_runs_on_nothing() -> None:
    state = shapes.HubState(sleep_time=-1)
    paused = record(stage=Stage.PAUSED, hardware="t4-small")  # the owner's tier lives in the space's record
    run = SpaceRuntime(shapes.runtime(paused, state, MACHINE, PLACE.public_host, None))
    assert (run.stage, run.hardware, run.requested_hardware, run.sleep_time) == ("PAUSED", None, "t4-small", -1)
    never = shapes.Machine(hardware="cpu-basic", sleep_after_s=0)
    assert SpaceRuntime(shapes.runtime(record(), shapes.HubState(), never, "h", None)).sleep_time == -1


def test_a_space_created_empty_has_the_sdk_it_was_created_with() -> None:
    info = SpaceInfo(**answer(record(card={}, stage=Stage.NO_APP_FILE), shapes.HubState(sdk="streamlit")))
    assert info.sdk == "streamlit"


def test_expand_keeps_only_what_it_names() -> None:
    rec = record()
    hub = shapes.space_fields(rec, shapes.HubState(), None, PLACE, {}, None)
    assert set(shapes.merged({"stage": "RUNNING"}, hub, True, ["likes", "sdk"])) == {"_id", "id", "likes", "sdk"}
    assert "sha" not in hub  # unknown until asked for (the list leaves it out)


def test_list_spaces_filters_sorts_and_limits_like_the_hub() -> None:
    def hub(owner: str, name: str, likes: int, created: float, tags: list[str]) -> dict[str, object]:
        rec = record(id=f"{owner}/{name}", owner=owner, name=name, likes=likes, created_at=created,
                     card={"sdk": "gradio", "tags": tags})
        return shapes.space_fields(rec, shapes.HubState(), None, PLACE, {}, None)

    spaces = [hub("alice", "chat-bot", 1, 10.0, ["nlp"]), hub("alice", "image", 9, 30.0, []),
              hub("bob", "chat", 5, 20.0, ["nlp"])]
    ids = [s["id"] for s in shapes.select(spaces, sort="likes")]
    assert ids == ["alice/image", "bob/chat", "alice/chat-bot"]
    assert [s["id"] for s in shapes.select(spaces, sort="createdAt", limit=2)] == ["alice/image", "bob/chat"]
    assert [s["id"] for s in shapes.select(spaces, author="alice", search="CHAT")] == ["alice/chat-bot"]
    assert [s["id"] for s in shapes.select(spaces, tags=["nlp", "gradio"])] == ["alice/chat-bot", "bob/chat"]
    with pytest.raises(Exception, match="sort 'stars' is not one of"):
        shapes.select(spaces, sort="stars")


def test_tree_entries_parse_as_repo_files_and_folders() -> None:
    file = RepoFile(**shapes.file_entry("src/app.py", 12, "b" * 40))
    folder = RepoFolder(**shapes.folder_entry("src", "c" * 40))
    assert (file.path, file.size, file.blob_id, file.lfs) == ("src/app.py", 12, "b" * 40, None)
    assert (folder.path, folder.tree_id) == ("src", "c" * 40)


def test_git_blob_ids_are_the_ones_huggingface_hub_computes_to_skip_unchanged_files() -> None:
    for content in (b"", b"Hello, World!", bytes(range(256)) * 10):
        assert shapes.git_blob_id(content) == git_hash(content)


def test_preupload_sends_everything_inline_skips_non_code_and_names_current_ids() -> None:
    files = [{"path": "app.py", "size": 3}, {"path": "__pycache__/x.pyc", "size": 5}]
    answer_ = shapes.preupload_answer(files, {"app.py": "d" * 40}, ["__pycache__/x.pyc"])
    assert answer_["files"] == [
        {"path": "app.py", "uploadMode": "regular", "shouldIgnore": False, "oid": "d" * 40},
        {"path": "__pycache__/x.pyc", "uploadMode": "regular", "shouldIgnore": True, "oid": None}]


def test_the_commit_payload_huggingface_hub_writes_is_read_operation_by_operation() -> None:
    add = CommitOperationAdd("src/app.py", b"print('hi')\n")
    add._upload_mode = "regular"
    lines = [json.dumps(item).encode() for item in _prepare_commit_payload(
        [add, CommitOperationDelete("old.py"), CommitOperationDelete("data/", is_folder=True)], {},
        "Add the app", "with a description", parent_commit="e" * 40)]
    assert [parse_line(line) for line in lines] == [
        Header("Add the app", "with a description", "e" * 40), AddFile("src/app.py", b"print('hi')\n"),
        DeleteFile("old.py"), DeleteFolder("data")]
    assert parse_line(b"  \n") is None


def test_lfs_files_answer_501_naming_git_push() -> None:
    line = json.dumps({"key": "lfsFile", "value": {"path": "model.bin", "algo": "sha256", "oid": "f" * 64}})
    with pytest.raises(NotSupportedError, match="model.bin") as refused:
        parse_line(line.encode())
    assert refused.value.http_status == 501 and "git push" in str(refused.value.hint)


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "", "a\\b", "a\0b", "/".join("d" * 70)])
def test_paths_outside_the_space_are_refused(path: str) -> None:
    with pytest.raises(UploadError):
        clean_path(path)
    line = json.dumps({"key": "file", "value": {"path": path, "content": base64.b64encode(b"x").decode()}})
    with pytest.raises(UploadError):
        parse_line(line.encode())


def test_a_broken_line_is_a_400_not_a_crash() -> None:
    for line in (b"{not json", b'["a"]', b'{"key": "file", "value": {"path": "a.py", "content": "!!!"}}',
                 b'{"key": "rename", "value": {"path": "a.py"}}'):
        with pytest.raises(UploadError):
            parse_line(line)
    assert clean_path("dir//sub/file.py/") == "dir/sub/file.py"


def _raised_by_the_client(path: str, exc: Exception, status: int) -> Exception:
    assert isinstance(exc, (NotFoundError, ForbiddenError, NotSupportedError))
    url = f"http://127.0.0.1:7000{path}"
    response = httpx2.Response(status, headers=error_headers(path, exc), json={"error": type(exc).__name__},
                               request=httpx2.Request("GET", url))
    with pytest.raises(hub_errors.HfHubHTTPError) as raised:
        hf_raise_for_status(response)
    return raised.value


def test_huggingface_hub_raises_its_own_exception_classes_on_our_errors() -> None:
    missing = _raised_by_the_client("/api/spaces/bob/secret", NotFoundError("no space named bob/secret"), 404)
    assert isinstance(missing, hub_errors.RepositoryNotFoundError)
    entry = _raised_by_the_client("/spaces/a/b/resolve/main/x.py", EntryNotFoundError("no file 'x.py'"), 404)
    assert isinstance(entry, hub_errors.EntryNotFoundError)
    assert not isinstance(entry, hub_errors.RepositoryNotFoundError)
    revision = _raised_by_the_client("/api/spaces/a/b/tree/dev", RevisionNotFoundError("no revision 'dev'"), 404)
    assert isinstance(revision, hub_errors.RevisionNotFoundError)
    forbidden = _raised_by_the_client("/api/spaces/bob/app/restart",
                                      ForbiddenError("bob/ is not the namespace of alice"), 403)
    assert type(forbidden) is hub_errors.HfHubHTTPError and "bob/ is not the namespace of alice" in str(forbidden)
    unsupported = _raised_by_the_client("/api/models/x/y", NotSupportedError("spaces-runtime serves Spaces only"),
                                        501)
    assert "serves Spaces only" in str(unsupported)


def test_error_messages_fit_in_one_header_line() -> None:
    headers = error_headers("/api/spaces/a/b", NotFoundError("line one\nline two — ünïcode"))
    assert headers["X-Error-Message"] == "line one line two ? ?n?code"


def test_list_spaces_hardware_parses_as_the_platform_tiers() -> None:
    tiers = [JobHardwareInfo(**item) for item in shapes.hardware_list(TIERS)]
    assert [t.name for t in tiers] == list(TIERS)
    gpu = next(t for t in tiers if t.name == "t4-small")
    assert gpu.accelerator is not None and gpu.accelerator.quantity == "1" and gpu.unit_cost_usd == 0.0


def test_hardware_and_sleep_time_are_checked_against_what_the_platform_has() -> None:
    assert shapes.check_hardware("cpu-upgrade", TIERS) == "cpu-upgrade"
    with pytest.raises(Exception, match="zero-a10g") as refused:
        shapes.check_hardware("zero-a10g", TIERS)
    assert "cpu-basic" in str(refused.value)
    assert shapes.check_sleep_time(-1) == -1 and shapes.check_sleep_time(300) == 300
    for bad in (-5, "300", True, None):
        with pytest.raises(Exception, match="sleep time"):
            shapes.check_sleep_time(bad)


@pytest.mark.parametrize("sdk", shapes.SDKS)
def test_a_new_space_readme_names_its_sdk_to_the_builder(sdk: str, tmp_path: Path) -> None:
    for name, text in shapes.new_space_files("demo", sdk).items():
        (tmp_path / name).write_text(text)
    if sdk == "static":
        assert build_spec.load(tmp_path, "demo").sdk == "static"
        return
    with pytest.raises(NoAppFileError):  # NO_APP_FILE until the app file is committed, as on the Hub
        build_spec.load(tmp_path, "demo")
    assert f"sdk: {sdk}" in (tmp_path / "README.md").read_text()


def test_file_downloads_on_the_path_form_are_the_platform_s() -> None:
    assert shapes.is_file_download({"type": "http", "path": "/spaces/alice/demo/resolve/main/app.py"})
    assert not shapes.is_file_download({"type": "http", "path": "/spaces/alice/demo/gradio_api/info"})
    assert not shapes.is_file_download({"type": "websocket", "path": "/spaces/alice/demo/resolve/x"})
    assert shapes.is_hub_client("unknown/None; hf_hub/2.4.0; python/3.11.7")
    assert not shapes.is_hub_client("python-httpx/0.28.1")


def test_a_tree_lists_one_level_or_everything_below_a_folder() -> None:
    pointer = Pointer("f" * 64, 10_000)
    blobs = {path: Blob(path, "a" * 40, 3, pointer if path.endswith(".bin") else None)
             for path in ("app.py", "src/z.py", "src/x/y.py", "src/x/w.bin")}
    tree = Tree("c" * 40, blobs, {"src": "1" * 40, "src/x": "2" * 40})
    assert [e["path"] for e in tree.entries()] == ["app.py", "src"]
    assert [e["path"] for e in tree.entries("src/")] == ["src/x", "src/z.py"]
    assert [e["path"] for e in tree.entries(recursive=True)] == \
        ["app.py", "src", "src/x", "src/x/w.bin", "src/x/y.py", "src/z.py"]
    with pytest.raises(EntryNotFoundError):
        tree.entries("nope")
    with pytest.raises(EntryNotFoundError):
        tree.blob("src")  # a folder is not a file to download
    lfs = RepoFile(**tree.blob("src/x/w.bin").entry())
    assert lfs.size == 10_000 and lfs.lfs is not None and lfs.lfs.sha256 == "f" * 64 and lfs.lfs.pointer_size == 3
    info = SpaceInfo(id="a/b", siblings=[b.sibling() for b in blobs.values()])
    assert info.siblings is not None and {s.rfilename: s.size for s in info.siblings}["src/x/w.bin"] == 10_000
