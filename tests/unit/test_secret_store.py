"""Secrets and variables: the names Hugging Face accepts, masking in logs, sealing at rest (a wrong or missing key
fails with a message that says what to do), and where a space's folder and build secrets come from."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from builder.docker.build import _space_secrets, _with_variables
from spaces_runtime.auth.secrets import SecretKeyError, SpaceSecrets, check_key, check_key_place, check_value
from spaces_runtime.errors import ConflictError, InvalidNameError, NotFoundError
from spaces_runtime.logs import MASK, LogBook, mask, maskable
from spaces_runtime.wiring.space_env import SpaceEnv, space_of_folder

VALUE = "sk-live-4f9a0c2e7b"


@pytest.mark.parametrize("key", ["OPENAI_API_KEY", "_private", "a1", "x", "Token_2"])
def test_environment_variable_names_are_accepted(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["1KEY", "MY-KEY", "MY KEY", "", "é", "K" * 129, "A=B"])
def test_names_no_environment_can_hold_are_refused(key: str) -> None:
    with pytest.raises(InvalidNameError, match="letters, digits and '_'"):
        check_key(key)


@pytest.mark.parametrize("key", ["SPACE_ID", "SYSTEM", "SPACES_RUNNER_TOKEN", "spaces_anything", "PATH",
                                 "GRADIO_SERVER_PORT", "ca_bundle", "BUILD_ENV"])
def test_names_the_platform_sets_are_reserved(key: str) -> None:
    with pytest.raises(InvalidNameError, match=f"{key} is reserved"):
        check_key(key)


def test_bad_values_are_refused_without_repeating_them() -> None:
    for value, why in [("a\x00b", "NUL"), ("x" * (64 * 1024 + 1), "more than")]:
        with pytest.raises(InvalidNameError, match=why) as caught:
            check_value(value, "secret's value")
        assert value not in str(caught.value)
    with pytest.raises(InvalidNameError, match="empty"):
        check_value("", "secret's value")


def test_masking_hides_each_value_and_leaves_short_ones() -> None:
    hidden = maskable([VALUE, "abc", "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA\n-----END KEY-----"])
    line = f"token={VALUE} short=abc body=MIIEpAIBAAKCAQEA end"
    assert mask(line, hidden) == f"token={MASK} short=abc body={MASK} end"


def test_a_longer_value_masks_before_its_part() -> None:
    hidden = maskable(["secret", "secret-and-more"])
    assert mask("x secret-and-more y", hidden) == f"x {MASK} y"


def test_the_log_file_and_its_followers_never_hold_a_value(tmp_path: Path) -> None:
    book = LogBook(tmp_path, masker=lambda space, text: mask(text, maskable([VALUE])) if space == "a/b" else text)
    book.write("a/b", "run", f"the key is {VALUE}")
    book.write("c/d", "run", f"the key is {VALUE}")  # another space's log: not its secret
    assert book.read("a/b", "run") == f"the key is {MASK}\n"
    assert VALUE in book.read("c/d", "run")


def store(tmp_path: Path, key_file: Path | None = None) -> SpaceSecrets:
    return SpaceSecrets(tmp_path / "spaces.db", key_file or tmp_path / "keys" / "secrets.key")


def test_a_secret_round_trips_and_is_only_ciphertext_at_rest(tmp_path: Path) -> None:
    secrets = store(tmp_path)
    info = secrets.set_secret("alice/app", "API_KEY", VALUE, "the vendor's key")
    assert info.key == "API_KEY" and not hasattr(info, "value")
    assert store(tmp_path).secret_values("alice/app") == {"API_KEY": VALUE}  # a fresh process reads it back
    for path in tmp_path.glob("spaces.db*"):
        assert VALUE.encode() not in path.read_bytes()
    key = tmp_path / "keys" / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700


def test_a_wrong_key_fails_clearly(tmp_path: Path) -> None:
    store(tmp_path).set_secret("alice/app", "API_KEY", VALUE)
    (tmp_path / "keys" / "secrets.key").write_bytes(Fernet.generate_key())
    with pytest.raises(SecretKeyError, match="sealed with another key") as caught:
        store(tmp_path).secret_values("alice/app")
    assert "put back the key file" in str(caught.value)


def test_a_missing_key_fails_clearly_and_is_not_replaced(tmp_path: Path) -> None:
    store(tmp_path).set_secret("alice/app", "API_KEY", VALUE)
    key = tmp_path / "keys" / "secrets.key"
    key.unlink()
    with pytest.raises(SecretKeyError, match="is missing"):
        store(tmp_path).secret_values("alice/app")
    assert not key.exists(), "reading must not make a new key that can open nothing"


def test_a_ciphertext_moved_to_another_space_does_not_open(tmp_path: Path) -> None:
    store(tmp_path).set_secret("alice/app", "API_KEY", VALUE)
    with sqlite3.connect(tmp_path / "spaces.db") as db:
        db.execute("UPDATE space_secrets SET space_id = 'mallory/app'")
    with pytest.raises(SecretKeyError, match="made for another space"):
        store(tmp_path).secret_values("mallory/app")


def test_a_secret_and_a_variable_cannot_share_a_name(tmp_path: Path) -> None:
    secrets = store(tmp_path)
    secrets.set_secret("alice/app", "TOKEN", VALUE)
    with pytest.raises(ConflictError, match="has a secret named TOKEN"):
        secrets.set_variable("alice/app", "TOKEN", "plain")
    secrets.set_variable("alice/app", "MODEL", "small")
    with pytest.raises(ConflictError, match="has a variable named MODEL"):
        secrets.set_secret("alice/app", "MODEL", VALUE)


def test_deleting_what_is_not_there_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no secret named NOPE"):
        store(tmp_path).delete_secret("alice/app", "NOPE")


def test_the_masker_forgets_a_deleted_secret(tmp_path: Path) -> None:
    secrets = store(tmp_path)
    secrets.set_secret("alice/app", "API_KEY", VALUE)
    assert secrets.mask("alice/app", VALUE) == MASK
    secrets.delete_secret("alice/app", "API_KEY")
    assert secrets.mask("alice/app", VALUE) == VALUE


def test_the_app_environment_merges_variables_secrets_then_the_platform(tmp_path: Path) -> None:
    secrets = store(tmp_path)
    secrets.set_variable("alice/app", "MODEL", "small")
    secrets.set_secret("alice/app", "API_KEY", VALUE)
    env = SpaceEnv(secrets, tmp_path / "apps", lambda space: {"SPACES_APP_ID": space})
    assert env("alice/app") == {"MODEL": "small", "API_KEY": VALUE, "SPACES_APP_ID": "alice/app"}
    folder = tmp_path / "apps" / "alice" / "app" / "versions" / "17" / "inner"
    folder.mkdir(parents=True)
    inputs = env.build_inputs(folder)
    assert dict(inputs.secrets) == {"API_KEY": VALUE} and dict(inputs.variables) == {"MODEL": "small"}
    assert not env.build_inputs(tmp_path).secrets, "a folder of no space (`spaces build DIR`) gets none"


def test_space_of_folder() -> None:
    apps = Path("/data/apps")
    assert space_of_folder(apps, apps / "bob" / "demo" / "versions" / "3") == "bob/demo"
    assert space_of_folder(apps, apps / "bob" / "demo") is None
    assert space_of_folder(apps, Path("/elsewhere/bob/demo/versions/3")) is None


def test_the_key_may_not_lie_where_apps_read(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="which apps can read"):
        check_key_place(tmp_path / "apps" / "k.key", tmp_path / "apps", tmp_path / "envs")
    assert check_key_place(tmp_path / "keys" / "k.key", tmp_path / "apps") == tmp_path / "keys" / "k.key"


def test_build_secrets_are_files_named_by_number_readable_by_the_platform_only(tmp_path: Path) -> None:
    args = _space_secrets(tmp_path, {"API_KEY": VALUE, "OTHER": "second"})
    assert args == ["--secret", f"id=API_KEY,src={tmp_path / 'space-secret-0'}",
                    "--secret", f"id=OTHER,src={tmp_path / 'space-secret-1'}"]
    assert (tmp_path / "space-secret-0").read_text() == VALUE
    assert stat.S_IMODE((tmp_path / "space-secret-0").stat().st_mode) == 0o600


def test_variables_key_the_image_and_no_variables_keep_its_old_key() -> None:
    assert _with_variables("c0de", {}) == "c0de"
    assert _with_variables("c0de", {"A": "1"}) != _with_variables("c0de", {"A": "2"})
