"""BuildKit's plain progress output → steps, and a failed build → a BuildError naming the step (pure).

Plain progress numbers each vertex: ``#7 [app 3/6] RUN uv pip install …`` names it, ``#7 1.234 text`` is its
output, ``#7 CACHED`` / ``#7 DONE 2.1s`` / ``#7 ERROR: … exit code: 1`` end it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from spaces_runtime.errors import BuildError

_VERTEX = re.compile(r"^#(\d+) (.*)$")
_OUTPUT = re.compile(r"^\d+\.\d+ (.*)$")
_FINAL_ERROR = re.compile(r"^(?:error|ERROR): (.*)$")
TAIL_LINES = 40


@dataclass
class Step:
    number: int
    name: str
    output: list[str] = field(default_factory=list)
    error: str | None = None
    cached: bool = False


def parse(lines: list[str]) -> dict[int, Step]:
    steps: dict[int, Step] = {}
    for line in lines:
        match = _VERTEX.match(line)
        if not match:
            continue
        number, rest = int(match.group(1)), match.group(2)
        step = steps.get(number)
        if step is None:
            steps[number] = Step(number, rest)
            continue
        _add(step, rest)
    return steps


def _add(step: Step, rest: str) -> None:
    output = _OUTPUT.match(rest)
    if output:
        step.output.append(output.group(1))
    elif rest == "CACHED":
        step.cached = True
    elif rest.startswith("ERROR"):
        step.error = rest.removeprefix("ERROR").lstrip(": ")


def failure(lines: list[str], rc: int) -> BuildError:
    """The error for a build that exited with ``rc``: the failed step, its command and its output."""
    failed = [s for s in parse(lines).values() if s.error is not None]
    if failed:
        step = failed[-1]
        return BuildError(f"image build failed at step '{step_label(step.name)}': {step.error}",
                          log_tail="\n".join(step.output[-TAIL_LINES:]))
    final = next((m.group(1) for line in reversed(lines) if (m := _FINAL_ERROR.match(line))), None)
    reason = final or f"docker build exited with code {rc}"
    return BuildError(f"image build failed: {reason}", log_tail="\n".join(lines[-TAIL_LINES:]))


_MOUNT = re.compile(r"--mount=\S+\s*")
_PRELUDE = re.compile(r"set -a && \. /run/secrets/build_env && set \+a && ")
_ASSIGNMENTS = re.compile(r"(?<=RUN )(?:[A-Z_]+=\S* )+")


def step_label(step_name: str) -> str:
    """'[3/6] RUN --mount=… set -a && . /run/secrets/build_env && set +a && uv pip install -r …' → 'RUN uv pip
    install -r …': the instruction without its numbering, mounts and secret prelude, for messages."""
    text = " ".join(re.sub(r"^\[[^\]]*\]\s*", "", step_name).split())
    return _ASSIGNMENTS.sub("", _PRELUDE.sub("", _MOUNT.sub("", text))).strip()
