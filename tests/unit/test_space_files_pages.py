"""The Files tab's and Duplicate page's pure parts: folders of a path, text or binary, sizes, the highlighted
file's markup escaped, and the namespaces a copy may go to."""

from __future__ import annotations

from spaces_runtime.auth.principal import Principal
from spaces_runtime.server.space_files import as_text, crumbs, highlighted, human_size, writable_namespaces


def test_a_path_becomes_its_folders() -> None:
    assert crumbs("src/pkg/mod.py") == [("src", "src"), ("pkg", "src/pkg"), ("mod.py", "src/pkg/mod.py")]
    assert crumbs("") == []


def test_binary_files_are_told_from_text() -> None:
    assert as_text("héllo\n".encode()) == "héllo\n"
    assert as_text(b"\x00\x01") is None
    assert as_text(b"\xff\xfe not utf-8") is None


def test_sizes_read_as_people_write_them() -> None:
    assert [human_size(n) for n in (12, 2048, 12_400, 5 * 1024**3)] == ["12 bytes", "2.0 kB", "12.1 kB", "5.0 GB"]


def test_a_files_markup_is_shown_never_run() -> None:
    html = highlighted("app.py", 'x = "<script>alert(1)</script>"\n')
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in highlighted("notes.unknown-ext", "<img src=x onerror=alert(1)>")


def test_a_copy_goes_where_its_maker_may_write() -> None:
    alice = Principal("alice", orgs={"vision": "write", "audio": "read"})
    assert writable_namespaces(alice, []) == ["alice", "vision"]
    assert writable_namespaces(Principal("root", admin=True), ["zeta", "alpha"]) == ["root", "alpha", "zeta"]
    assert writable_namespaces(Principal("reader", cap="read"), []) == []
