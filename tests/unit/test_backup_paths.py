"""Where a space's code goes in a backup, and where it comes back on restore (code_dir paths are absolute)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.errors import SpacesError
from spaces_runtime.housekeeping.backup import archived_code_dir, is_archive, rebased_code_dir


def test_code_under_the_apps_dir_keeps_its_place_and_lands_on_the_new_data_dir() -> None:
    relative = archived_code_dir("/old/data/apps/me/app/versions/17/inner", Path("/old/data/apps"), "me/app")
    assert relative == "apps/me/app/versions/17/inner"
    assert rebased_code_dir(relative, Path("/new/data")) == Path("/new/data/apps/me/app/versions/17/inner")


def test_code_that_lived_elsewhere_gets_a_folder_of_its_space() -> None:
    assert archived_code_dir("/srv/elsewhere", Path("/old/data/apps"), "me/app") == "apps/me/app/versions/restored"


@pytest.mark.parametrize("relative", ["../outside", "apps/../../etc", "/etc/passwd", "logs/me", ""])
def test_a_backup_cannot_point_code_outside_the_new_apps_dir(relative: str) -> None:
    with pytest.raises(SpacesError, match="not under apps/"):
        rebased_code_dir(relative, Path("/new/data"))


def test_archive_names() -> None:
    assert is_archive(Path("b.tar.gz")) and is_archive(Path("b.tgz")) and not is_archive(Path("backup-folder"))
