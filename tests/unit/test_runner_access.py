"""Who may change the runner's models, which names may reach the disk, and how an upload replaces a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spaces_runtime.errors import BadInputError, ForbiddenError
from spaces_runtime.runner import access, catalog, modelfiles
from spaces_runtime.runner.catalog import ModelSpec
from spaces_runtime.runner.tokens import ADMIN

BUILTIN = ModelSpec("minilm", "feature-extraction", "minilm", "/x", 1, builtin=True)
UPLOADED = ModelSpec("cnn", "tensor", "torchscript", "/y", 1, "float32", (4,), extra={"owner": "app-a"})
ORPHAN = ModelSpec("old", "tensor", "torchscript", "/z", 1, "float32", (4,), extra={"owner": None})


def test_a_free_name_is_anyones_and_an_uploaded_model_only_its_owners_or_the_platforms() -> None:
    access.check_replace(None, "anyone")
    access.check_replace(UPLOADED, "app-a")
    access.check_replace(UPLOADED, ADMIN)
    with pytest.raises(ForbiddenError, match="'cnn' was uploaded by another app"):
        access.check_replace(UPLOADED, "app-b")
    with pytest.raises(ForbiddenError, match="uploaded by another app"):
        access.check_replace(ORPHAN, "app-b")  # a spec.json written before owners were recorded


def test_built_in_models_cannot_be_replaced_even_by_the_platform() -> None:
    for app in ("app-a", ADMIN):
        with pytest.raises(ForbiddenError, match="built into the runner") as caught:
            access.check_replace(BUILTIN, app)
        assert caught.value.http_status == 403 and caught.value.code == "forbidden"


def test_pin_and_unload_are_for_the_platform_and_the_owner_of_an_uploaded_model() -> None:
    for action in ("pin", "unload"):
        access.check_manage(BUILTIN, ADMIN, action)
        access.check_manage(UPLOADED, ADMIN, action)
        access.check_manage(UPLOADED, "app-a", action)
        with pytest.raises(ForbiddenError, match=f"may not {action} 'cnn': it is a model another app uploaded"):
            access.check_manage(UPLOADED, "app-b", action)
        with pytest.raises(ForbiddenError, match=f"may not {action} 'minilm': it is a built-in model"):
            access.check_manage(BUILTIN, "app-a", action)
        with pytest.raises(ForbiddenError):
            access.check_manage(ORPHAN, "app-b", action)


def test_a_refusal_reaches_the_caller_as_403_forbidden() -> None:
    from spaces_runtime.runner.server import error_response

    response = error_response(ForbiddenError("an app may not pin 'minilm'", hint="use the admin token"))
    assert response.status_code == 403
    assert json.loads(bytes(response.body))["error"]["code"] == "forbidden"


@pytest.mark.parametrize("name", ["cnn", "my-model_2.v1", "0", "a" * 64])
def test_model_names_that_are_allowed(name: str) -> None:
    assert catalog.check_name(name) == name


@pytest.mark.parametrize("name", ["", "..", ".", ".hidden", "a..b", "a/b", "../etc", "a\\b", "Upper", "a" * 65,
                                  "trailing\n", "-x", "_x", "sp ace", "nul\x00"])
def test_model_names_that_could_leave_the_models_dir_or_confuse_it_are_refused(name: str) -> None:
    with pytest.raises(BadInputError, match="is not allowed") as caught:
        catalog.check_name(name)
    assert "lowercase letters" in str(caught.value)


def test_a_staged_upload_that_fails_its_check_leaves_the_live_model_and_no_files(tmp_path: Path) -> None:
    folder = tmp_path / "cnn"
    with modelfiles.staged(folder, b"v1", "torchscript") as first:
        live = modelfiles.commit(folder, first, {"task": "tensor", "owner": "app-a"})
    with pytest.raises(BadInputError), modelfiles.staged(folder, b"not a zip", "torchscript") as bad:
        modelfiles.check_archive(bad.path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["spec.json", live.name])
    assert live.read_bytes() == b"v1"
    assert json.loads((folder / "spec.json").read_text()) == {"task": "tensor", "owner": "app-a", "file": live.name}


def test_a_failed_first_upload_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInputError), modelfiles.staged(tmp_path / "new", b"x", "export") as bad:
        modelfiles.check_archive(bad.path)
    assert list(tmp_path.iterdir()) == []


def test_a_committed_upload_replaces_the_old_file_and_prune_removes_it(tmp_path: Path) -> None:
    folder = tmp_path / "cnn"
    with modelfiles.staged(folder, b"v1", "torchscript") as first:
        old = modelfiles.commit(folder, first, {"owner": "app-a"})
    with modelfiles.staged(folder, b"v2", "export") as second:
        new = modelfiles.commit(folder, second, {"owner": "app-a", "format": "export"})
    assert new != old and new.suffix == ".pt2" and new.read_bytes() == b"v2"
    assert json.loads((folder / "spec.json").read_text())["file"] == new.name
    modelfiles.prune(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(["spec.json", new.name])
