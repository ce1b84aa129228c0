"""Hostile and broken uploads are refused with a clear message, and nothing lands outside the scratch folder."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from spaces_runtime.appfiles import Totals, UploadLimits, receive, unpack, unpack_stream
from spaces_runtime.errors import UploadError, UploadTooLargeError

LIMITS = UploadLimits(max_upload_bytes=1024 * 1024, max_unpacked_bytes=4 * 1024 * 1024, max_files=50)


def make_tar(tmp_path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    path = tmp_path / "upload.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link_member(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def test_good_archive_unpacks_to_the_app_folder(tmp_path: Path) -> None:
    archive = make_tar(tmp_path, [file_member("app.py"), file_member("README.md"), link_member("main.py", "app.py")],
                       {"app.py": b"print('hi')", "README.md": b"---\nsdk: gradio\n---\n"})
    root = unpack(archive, tmp_path / "out", LIMITS)
    assert (root / "app.py").read_text() == "print('hi')"
    assert (root / "main.py").is_symlink()


def test_single_top_level_folder_is_the_app(tmp_path: Path) -> None:
    archive = make_tar(tmp_path, [file_member("my-app/app.py")], {"my-app/app.py": b"x = 1"})
    assert unpack(archive, tmp_path / "out", LIMITS).name == "my-app"


@pytest.mark.parametrize(("member", "message"), [
    (file_member("../evil.py"), "outside the app folder"),
    (file_member("a/../../evil.py"), "outside the app folder"),
    (file_member("/etc/evil"), "absolute path"),
    (link_member("escape", "../../etc/passwd"), "symlink to '../../etc/passwd', outside"),
    (link_member("abs", "/etc/passwd"), "symlink to '/etc/passwd', outside"),
    (link_member("hard", "../../etc/passwd", hard=True), "hard link"),
])
def test_hostile_members_are_refused(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    archive = make_tar(tmp_path, [member], {member.name: b"x"} if member.isfile() else None)
    with pytest.raises(UploadError, match=message):
        unpack(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "evil.py").exists()


def test_device_files_are_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("null")
    info.type = tarfile.CHRTYPE
    archive = make_tar(tmp_path, [info])
    with pytest.raises(UploadError, match="device or fifo"):
        unpack(archive, tmp_path / "out", LIMITS)


def test_archive_bomb_is_refused_by_unpacked_size(tmp_path: Path) -> None:
    big = b"\0" * (5 * 1024 * 1024)  # compresses to a few KiB, unpacks past the 4 MiB limit
    archive = make_tar(tmp_path, [file_member("zeros.bin")], {"zeros.bin": big})
    assert archive.stat().st_size < LIMITS.max_upload_bytes
    with pytest.raises(UploadTooLargeError, match="unpacks to more than 4 MiB"):
        unpack(archive, tmp_path / "out", LIMITS)


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    members = [file_member(f"f{i}.txt") for i in range(60)]
    archive = make_tar(tmp_path, members, {m.name: b"x" for m in members})
    with pytest.raises(UploadTooLargeError, match="more than 50 entries"):
        unpack(archive, tmp_path / "out", LIMITS)


def test_not_a_tar_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(b"this is not an archive")
    with pytest.raises(UploadError, match="not a readable gzip'd tar"):
        unpack(path, tmp_path / "out", LIMITS)


async def test_receive_stops_at_the_upload_limit(tmp_path: Path) -> None:
    async def chunks():
        for _ in range(20):
            yield b"x" * 100_000

    with pytest.raises(UploadTooLargeError, match="larger than the limit of 1 MiB"):
        await receive(chunks(), tmp_path / "scratch", LIMITS)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_an_archive_of_countless_headers_is_refused_at_the_limit(tmp_path: Path) -> None:
    """A tiny gzip of many empty entries is refused at the count limit, having read no further."""
    members = [file_member(f"f{i}") for i in range(500)]
    archive = make_tar(tmp_path, members, {m.name: b"" for m in members})
    totals = Totals()
    with archive.open("rb") as raw, pytest.raises(UploadTooLargeError, match="more than 50 entries"):
        unpack_stream(raw, tmp_path / "out", LIMITS, totals)
    assert totals.files == LIMITS.max_files + 1
    assert not (tmp_path / "out").exists()


def test_a_decompression_bomb_is_refused_before_much_more_than_the_limit_is_decompressed(tmp_path: Path) -> None:
    """Many members, each under the limit, declaring 64x the limit together: refused while streaming."""
    path = tmp_path / "bomb.tar.gz"
    chunk = b"\0" * (1024 * 1024)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(256):
            info = tarfile.TarInfo(f"zeros{i}.bin")
            info.size = len(chunk)
            tar.addfile(info, io.BytesIO(chunk))
    totals = Totals()
    with path.open("rb") as raw, pytest.raises(UploadTooLargeError, match="unpacks to more than 4 MiB"):
        unpack_stream(raw, tmp_path / "out", LIMITS, totals)
    assert totals.decompressed <= LIMITS.max_unpacked_bytes + 2 * 1024 * 1024
    assert not (tmp_path / "out").exists()


def test_a_lying_header_cannot_unpack_past_the_limit(tmp_path: Path) -> None:
    """Sizes are counted as decompressed, not only as declared."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 6 * 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\1" * info.size))
    path = tmp_path / "big.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(UploadTooLargeError):
        unpack(path, tmp_path / "out", LIMITS)


def test_a_very_deep_path_is_a_clear_error(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 2100) + "/app.py"
    archive = make_tar(tmp_path, [file_member(deep)], {deep: b"x"})
    with pytest.raises(UploadError, match="folders deep|-byte path"):
        unpack(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_a_name_that_is_not_utf8_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UploadError, match="not UTF-8"):
        unpack(path, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_a_chain_of_links_cannot_lead_outside(tmp_path: Path) -> None:
    """Each link alone stays inside; together `b -> a/..` with `a -> .` points at the folder's parent."""
    archive = make_tar(tmp_path, [link_member("b", "a/.."), link_member("a", ".")])
    with pytest.raises(UploadError, match="outside the app folder"):
        unpack(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()


def test_nothing_is_written_through_a_link_that_leads_outside(tmp_path: Path) -> None:
    archive = make_tar(tmp_path, [link_member("a", "."), link_member("b", "a/.."), file_member("b/evil.py")],
                       {"b/evil.py": b"x"})
    with pytest.raises(UploadError, match="outside the app folder"):
        unpack(archive, tmp_path / "sub" / "out", LIMITS)
    assert not (tmp_path / "sub" / "evil.py").exists()


def test_hard_links_are_copies_of_earlier_files(tmp_path: Path) -> None:
    archive = make_tar(tmp_path, [file_member("app.py"), link_member("main.py", "app.py", hard=True)],
                       {"app.py": b"print(1)"})
    root = unpack(archive, tmp_path / "out", LIMITS)
    assert (root / "main.py").read_text() == "print(1)" and not (root / "main.py").is_symlink()
