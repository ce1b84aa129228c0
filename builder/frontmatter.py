"""README.md front matter: the YAML between the leading ``---`` lines, with the README line of every key.

Values come from ``yaml.safe_load``; the node tree from ``yaml.compose`` gives line numbers and the raw text of
scalars (``python_version: 3.10`` loads as the float 3.1, but its raw text is "3.10").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from spaces_runtime.errors import SpecError

README = "README.md"
FENCE = "---"


@dataclass(frozen=True)
class Entry:
    """One top-level key of the front matter."""

    value: Any
    raw: str | None  # the scalar's text as written; None for lists and mappings
    line: int  # README.md line number (1-based)


@dataclass(frozen=True)
class FrontMatter:
    entries: dict[str, Entry] = field(default_factory=dict)
    body: str = ""
    present: bool = False  # False: the README has no front matter (or there is no README)
    first_line: int = 1


def split(text: str) -> tuple[str, str, int] | None:
    """(yaml text, body, README line of the yaml's first line) or None when the README has no front matter."""
    lines = text.removeprefix("\ufeff").splitlines(keepends=True)
    if not lines or lines[0].rstrip() != FENCE:
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() in (FENCE, "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1:]).lstrip("\n"), 2
    raise SpecError("the front matter starts with '---' but has no closing '---' line; "
                    "add a line '---' after the last key", file=README, line=1)


def parse(text: str) -> FrontMatter:
    """Parse a README's text; every YAML error is a SpecError with the README line it points at."""
    parts = split(text)
    if parts is None:
        return FrontMatter(body=text, present=False)
    yaml_text, body, offset = parts
    try:
        node = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, offset) from None
    if node is None or data is None:
        return FrontMatter(body=body, present=True, first_line=offset)
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        raise SpecError("the front matter must be 'key: value' lines (a YAML mapping), "
                        f"found a {type(data).__name__}", file=README, line=node.start_mark.line + offset)
    return FrontMatter(entries=_entries(node, data, offset), body=body, present=True, first_line=offset)


def _entries(node: yaml.MappingNode, data: dict[Any, Any], offset: int) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + offset
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str) or not key:
            raise SpecError("front matter keys must be plain words like 'sdk'", file=README, line=line)
        if key in entries:
            raise SpecError(f"key '{key}' appears twice (first on line {entries[key].line}); keep one",
                            file=README, line=line)
        raw = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        entries[key] = Entry(value=_lookup(data, key), raw=raw, line=line)
    return entries


def _lookup(data: dict[Any, Any], key: str) -> Any:
    # safe_load may turn a key like "yes" or "1" into a bool or int; find it by its text then
    if key in data:
        return data[key]
    return next((v for k, v in data.items() if str(k).lower() == key.lower()), None)


def _yaml_error(exc: yaml.YAMLError, offset: int) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        # an unclosed bracket is reported where the text ends; say where it was opened too
        context = f"{context} (started on line {context_mark.line + offset})"
    reason = f"{context}, {problem}" if context else problem
    line = mark.line + offset if mark is not None else offset - 1
    return SpecError(f"the front matter is not valid YAML: {reason}",
                     file=README, line=line,
                     hint="write one 'key: value' per line, and quote values that contain ': ' or start with '*'")
