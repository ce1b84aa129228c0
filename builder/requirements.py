"""requirements.txt, pre-requirements.txt and packages.txt: one entry a line, with the line it came from.

A requirement line is pip's: a PEP 508 requirement (parsed by ``packaging``), optionally followed by
per-requirement options (``--hash=...``), or a line pip itself reads (an option like ``--index-url``, a bare URL
like ``git+https://...``). Lines are kept as written for the installer; names and extras are read from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from spaces_runtime.errors import SpecError

REQUIREMENTS = "requirements.txt"
PRE_REQUIREMENTS = "pre-requirements.txt"
PACKAGES = "packages.txt"

_OPTIONS = re.compile(r"\s+--?[A-Za-z]")  # where pip's per-requirement options (--hash=...) begin
_INLINE_COMMENT = re.compile(r"\s+#.*$")
# lines that point at other files or at local code: their content would escape the environment's hash
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_LOCAL = ("-e", "--editable", ".", "/", "file:")


@dataclass(frozen=True)
class Line:
    text: str
    number: int


def read_lines(folder: Path, name: str) -> list[Line]:
    """Non-blank, non-comment lines of ``folder/name`` (none when the file is missing)."""
    text = read_text(folder, name)
    if text is None:
        return []
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = _INLINE_COMMENT.sub("", raw).strip()
        if stripped and not stripped.startswith("#"):
            lines.append(Line(stripped, number))
    return lines


def read_text(folder: Path, name: str) -> str | None:
    """A file of the app folder as text; None when missing. A symlink out of the folder is refused."""
    path = folder / name
    if not path.is_file():
        return None
    if not path.resolve().is_relative_to(folder.resolve()):
        raise SpecError("is a link to a file outside the app folder; put the file itself in the folder",
                        file=name)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"is not UTF-8 text ({exc.reason}); save it as UTF-8", file=name) from None


def read_requirements(folder: Path, name: str) -> list[Line]:
    """Like ``read_lines`` but rejects includes and local paths, which the environment hash cannot see."""
    lines = read_lines(folder, name)
    for line in lines:
        _check(line, name)
    return lines


def _check(line: Line, name: str) -> None:
    first = line.text.split()[0]
    if first in _INCLUDES or any(first.startswith(f"{flag}=") for flag in _INCLUDES):
        raise SpecError(f"'{line.text}' includes another file, which is not supported; "
                        f"copy that file's lines into {name}", file=name, line=line.number)
    if first in _LOCAL[:2] or line.text.startswith(_LOCAL[2:]) or _local_source(line.text):
        raise SpecError(f"'{line.text}' installs local code, which is not supported; "
                        "put the code in the app folder and import it, or name a package on an index",
                        file=name, line=line.number)


def _local_source(text: str) -> bool:
    """``name @ file:///…`` (a direct reference to a file of the host), or ``--find-links`` at a local folder:
    both install files from outside the app folder, which neither the environment's hash nor its sandbox sees."""
    words = text.replace("=", " ", 1).split() if text.startswith("-") else []
    if words and words[0] in ("-f", "--find-links"):
        return len(words) > 1 and not words[1].startswith(("http://", "https://"))
    requirement = parse(text)
    return requirement is not None and (requirement.url or "").startswith("file:")


def parse(requirement: str) -> Requirement | None:
    """The PEP 508 requirement of a line (name, extras, version, URL, markers), per-requirement options left
    out; None for lines that name no project: options (``--index-url ...``), bare URLs (``git+https://...``)."""
    if requirement.startswith("-"):
        return None
    try:
        return Requirement(_OPTIONS.split(requirement, maxsplit=1)[0])
    except InvalidRequirement:
        return None


def package_name(requirement: str) -> str | None:
    """The PEP 503 normalised project name of a requirement line, or None for options and bare URLs."""
    parsed = parse(requirement)
    return normalise_name(parsed.name) if parsed else None


def extras(requirement: str) -> set[str]:
    """The normalised extras of a requirement: ``gradio[OAuth, mcp]==5`` → {"oauth", "mcp"}."""
    parsed = parse(requirement)
    return {normalise_name(extra) for extra in parsed.extras} if parsed else set()


def normalise_name(name: str) -> str:
    return canonicalize_name(name)


def normalise(requirement: str) -> str:
    """A requirement written so that spacing and name spelling do not change the environment hash.

    The rest of the line stays as written (no whitespace), so hashes of environments built before this used
    ``packaging`` are unchanged."""
    compact = re.sub(r"\s+", "", requirement) if " @ " not in requirement else requirement.strip()
    parsed = parse(requirement)
    if parsed is None:
        return compact
    return normalise_name(parsed.name) + compact[len(parsed.name):]
