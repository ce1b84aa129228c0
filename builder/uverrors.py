"""uv's failure output → a BuildError that names the requirement and the line to fix (pure)."""

from __future__ import annotations

import re

from builder.requirements import REQUIREMENTS, normalise_name, package_name
from spaces_runtime.errors import BuildError

TAIL_LINES = 30
FANCY_ERROR = "\u00d7"  # uv's error mark when it writes to a terminal
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def reason(lines: list[str]) -> str:
    """uv's error, from its first ``error:`` line on, as one sentence."""
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith(("error:", FANCY_ERROR))), None)
    if start is None:
        return next((line.strip() for line in reversed(lines) if line.strip()), "uv failed without output")
    parts = []
    for line in lines[start:]:
        text = line.strip().removeprefix("error:").removeprefix("cause:").removeprefix(FANCY_ERROR).strip()
        if text.startswith("hint:"):
            break
        if text:
            parts.append(text)
    if not parts:
        return "uv failed without saying why"
    return parts[0] + (": " + " ".join(parts[1:]) if len(parts) > 1 else "")


def blame(requirements: list[str], origins: dict[str, str], why: str) -> str | None:
    """The requirement uv's reason is about, preferring ones the user wrote over the platform's SDK pin."""
    by_name = {package_name(r): r for r in requirements if package_name(r)}
    mentioned = [normalise_name(t.rstrip("._-")) for t in _TOKEN.findall(why)]
    named = [by_name[m] for m in dict.fromkeys(mentioned) if m in by_name]
    # origins of user lines read "requirements.txt line 2"; the SDK pin's origin names no line
    from_user = [r for r in named if " line " in origins.get(r, "")]
    if from_user:
        return from_user[0]
    return named[0] if named else None


def explain_install_failure(requirements: list[str], origins: dict[str, str], lines: list[str]) -> BuildError:
    """The message carries uv's reason in one sentence, for where it is shown alone; the summary leaves it to
    uv's own lines, which stand beside it in the build log and the stage's error."""
    why = reason(lines)
    tail = "\n".join(lines[-TAIL_LINES:])
    culprit = blame(requirements, origins, why)
    if culprit is None:
        return BuildError(f"installing the requirements failed: {why}", log_tail=tail,
                          hint=f"check the versions in {REQUIREMENTS}",
                          summary="installing the requirements failed")
    where = origins.get(culprit, REQUIREMENTS)
    return BuildError(f"{where}: '{culprit}' could not be installed: {why}", log_tail=tail,
                      hint=_hint(where), summary=f"{where}: '{culprit}' could not be installed")


def _hint(where: str) -> str:
    if " line " in where:
        return "fix or remove that line; check the package name and that the version exists on the index"
    return "change sdk_version in README.md, or loosen the requirement it conflicts with"


def explain_venv_failure(python_version: str, lines: list[str], default_version: str) -> BuildError:
    return BuildError(f"could not create a Python {python_version} virtualenv: {reason(lines)}",
                      log_tail="\n".join(lines[-TAIL_LINES:]),
                      summary=f"could not create a Python {python_version} virtualenv",
                      hint=f"set python_version in README.md to one installed on this host "
                           f"(the platform's default is {default_version}), or install Python {python_version}")
