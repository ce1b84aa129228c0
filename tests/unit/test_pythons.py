"""builder.pythons: which interpreter an app's python_version gets (pure), and finding the host's interpreters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from builder import pythons
from builder.pythons import Interpreter, choose, discover
from spaces_runtime.config import Settings
from spaces_runtime.errors import BuildError

README = "set in README.md"


def found(*versions: str, source: str = "/root/.pyenv/versions") -> list[Interpreter]:
    out = []
    for version in versions:
        major, minor, micro = (int(v) for v in version.split("."))
        out.append(Interpreter(Path(f"/py/{version}/bin/python{major}.{minor}"), (major, minor, micro), source))
    return out


def test_a_minor_version_gets_its_newest_patch_release_and_the_log_says_which() -> None:
    choice = choose("3.12", found("3.11.7", "3.12.1", "3.12.8", "3.13.0"), origin=README)
    assert choice.interpreter is not None and choice.interpreter.full_version == "3.12.8"
    assert choice.uv_python == "/py/3.12.8/bin/python3.12"
    assert choice.note == ("Python 3.12.8 (/py/3.12.8/bin/python3.12, found in /root/.pyenv/versions) for "
                           "python_version 3.12, set in README.md")


def test_an_exact_patch_release_is_preferred_and_else_its_minor_stands_in() -> None:
    assert choose("3.12.1", found("3.12.1", "3.12.8"), origin=README).uv_python == "/py/3.12.1/bin/python3.12"
    stand_in = choose("3.12.4", found("3.12.1", "3.12.8"), origin=README)
    assert stand_in.uv_python == "/py/3.12.8/bin/python3.12" and not stand_in.nearest
    assert "3.12.4 itself is not installed" in stand_in.note


def test_equal_versions_go_to_the_operators_list() -> None:
    listed = found("3.12.1", source="SPACES_PYTHONS")[0]
    other = Interpreter(Path("/usr/bin/python3.12"), (3, 12, 1), "PATH")
    assert choose("3.12", [other, listed], origin=README).interpreter == listed


def test_a_missing_version_is_a_build_error_naming_request_host_and_the_way_to_add_one() -> None:
    with pytest.raises(BuildError) as caught:
        choose("3.9", found("3.10.13", "3.11.7", "3.12.1"), origin=README)
    message = str(caught.value)
    assert message.startswith("python_version 3.9 (set in README.md) is not installed on this host, and the "
                              "platform does not download interpreters; this host has Python 3.10.13, 3.11.7, "
                              "3.12.1")
    assert "SPACES_PYTHONS" in message and "SPACES_PYTHON_NEAREST=true" in message


def test_nearest_is_used_only_when_the_operator_allows_it_and_is_announced() -> None:
    choice = choose("3.9", found("3.8.18", "3.10.13", "3.12.1"), origin=README, nearest=True)
    assert choice.nearest and choice.interpreter is not None
    assert choice.interpreter.full_version == "3.10.13"  # equally near as 3.8: the newer one
    assert choice.note.startswith("WARNING: Python 3.9 (set in README.md) is not installed here; using the "
                                  "nearest, Python 3.10.13")


def test_downloads_only_when_allowed_and_nothing_installed_matches() -> None:
    allowed = choose("3.14", found("3.12.1"), origin=README, downloads=True)
    assert allowed.interpreter is None and allowed.uv_python == "3.14"
    assert "uv downloads it (SPACES_PYTHON_DOWNLOADS=true)" in allowed.note
    installed = choose("3.12", found("3.12.1"), origin=README, downloads=True)
    assert installed.uv_python == "/py/3.12.1/bin/python3.12"


def _base_interpreter() -> Path:
    return Path(os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable))


def test_an_interpreter_the_operator_lists_is_found_and_a_dead_shim_is_not(tmp_path: Path) -> None:
    listed = tmp_path / "pythons"
    listed.mkdir()
    (listed / f"python3.{sys.version_info.minor}").symlink_to(_base_interpreter())
    shim = tmp_path / "shims" / "python3.9"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.9: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    settings = Settings(data_dir=tmp_path, pythons=[listed, shim])
    interpreters = discover(settings, {"PATH": "", "HOME": str(tmp_path / "home")})
    mine = [i for i in interpreters if i.path == _base_interpreter()]
    assert mine and mine[0].source == "SPACES_PYTHONS"
    assert mine[0].version == tuple(sys.version_info[:3])
    assert all(i.version[:2] != (3, 9) or i.source != "SPACES_PYTHONS" for i in interpreters)


def test_spaces_pythons_reads_a_colon_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACES_PYTHONS", "/opt/py312/bin/python3.12:/opt/pythons")
    assert Settings().pythons == [Path("/opt/py312/bin/python3.12"), Path("/opt/pythons")]


def test_an_image_gets_the_base_s_python_or_a_copy_of_the_host_s_or_with_nearest_the_nearer() -> None:
    """The docker backend's choice (builder.pythons.for_image): exact first; SPACES_PYTHON_NEAREST picks the nearer
    of the base image's Python and the host's, the base's on a tie (no copy needed), and says so."""
    host = [Interpreter(Path("/root/.pyenv/versions/3.9.19/bin/python3.9"), (3, 9, 19), "pyenv"),
            Interpreter(Path("/root/.pyenv/versions/3.12.7/bin/python3.12"), (3, 12, 7), "pyenv")]
    assert pythons.for_image("3.11", "3.11", host, origin="README").interpreter is None
    assert pythons.for_image("3.9", "3.11", host, origin="README").interpreter == host[0]
    with pytest.raises(BuildError):
        pythons.for_image("3.8", "3.11", host, origin="README")  # not without the operator's say-so
    to_base = pythons.for_image("3.10", "3.11", host, origin="README", nearest=True)  # 3.9 and 3.11 tie
    assert (to_base.interpreter, to_base.request, to_base.nearest) == (None, "3.11", True)
    assert "nearest, Python 3.11 of the base image" in to_base.note
    to_host = pythons.for_image("3.8", "3.11", host, origin="README", nearest=True)
    assert (to_host.interpreter, to_host.request, to_host.nearest) == (host[0], "3.9", True)
