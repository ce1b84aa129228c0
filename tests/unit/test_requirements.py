"""builder.requirements: which project a requirements.txt line names, its extras, and the spelling-free form the
environment hash is made of, for every kind of line pip reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.requirements import extras, normalise, package_name, read_requirements
from spaces_runtime.errors import SpecError


@pytest.mark.parametrize(("line", "name"), [
    ("numpy", "numpy"),
    ("numpy >= 1.26, <2", "numpy"),
    ("Scikit_Learn==1.5", "scikit-learn"),
    ("Zope.Interface>=5", "zope-interface"),
    ("requests[socks]>=2 ; python_version < '3.12'", "requests"),
    ("foo @ https://example.com/foo-1.0.tar.gz", "foo"),
    ("foo@https://example.com/foo-1.0-py3-none-any.whl", "foo"),
    ("torch==2.13.0 --hash=sha256:0123abcd", "torch"),
    ("git+https://github.com/owner/repo.git#egg=repo", None),
    ("https://example.com/pkg-1.0-py3-none-any.whl", None),
    ("--index-url https://mirror.example/simple", None),
    ("--extra-index-url=https://mirror.example/simple", None),
    ("--pre", None),
])
def test_the_project_a_line_names(line: str, name: str | None) -> None:
    assert package_name(line) == name


def test_extras_are_read_and_normalised() -> None:
    assert extras("Gradio[OAuth, mcp]==5.9.1") == {"oauth", "mcp"}
    assert extras("gradio[some_extra]") == {"some-extra"}
    assert extras("gradio") == set()
    assert extras("git+https://github.com/owner/repo.git") == set()


@pytest.mark.parametrize(("line", "normal"), [
    ("numpy >= 1.26", "numpy>=1.26"),
    ("Six", "six"),
    ("Gradio[oauth]==4.0", "gradio[oauth]==4.0"),
    ("opencv_python_headless==4.10.0.84", "opencv-python-headless==4.10.0.84"),
    ("requests[socks]>=2 ; python_version < '3.12'", "requests[socks]>=2;python_version<'3.12'"),
    ("foo @ https://example.com/foo-1.0.tar.gz", "foo @ https://example.com/foo-1.0.tar.gz"),
    ("--index-url https://mirror.example/simple", "--index-urlhttps://mirror.example/simple"),
    ("git+https://github.com/owner/repo.git", "git+https://github.com/owner/repo.git"),
])
def test_the_hashed_form_ignores_spacing_and_name_spelling_only(line: str, normal: str) -> None:
    """These forms are what existing environments' hashes were made of: they must not change."""
    assert normalise(line) == normal


def test_lines_pip_reads_pass_and_includes_are_refused_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "--index-url https://mirror.example/simple\ngit+https://github.com/owner/repo.git\n"
        "foo @ https://example.com/foo-1.0.tar.gz  # pinned by URL\n")
    assert [line.text for line in read_requirements(tmp_path, "requirements.txt")] == [
        "--index-url https://mirror.example/simple", "git+https://github.com/owner/repo.git",
        "foo @ https://example.com/foo-1.0.tar.gz"]
    (tmp_path / "requirements.txt").write_text("six\n\n--requirement=more.txt\n")
    with pytest.raises(SpecError) as caught:
        read_requirements(tmp_path, "requirements.txt")
    assert str(caught.value).startswith("requirements.txt line 3: '--requirement=more.txt' includes another file")
