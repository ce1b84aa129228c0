"""Per-app logs: bounded files on disk (build and run), appended line by line, followed live.

One LogBook per platform. Writers (builder, supervisor, backends) get a plain ``LogSink`` callable so they need
not know about files; readers dump the file or follow it through an asyncio queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Literal

LogKind = Literal["build", "run"]
LogSink = Callable[[str], None]
# (space id, text) → the text with that space's secret values replaced by MASK (the wiring sets one that asks
# spaces_runtime.auth.secrets); applied to every line before it is stored or followed, so neither the log file
# nor a reader ever holds a secret's value
Masker = Callable[[str, str], str]
MASK = "***"
MIN_MASKED = 4  # shorter values would mask ordinary words and numbers all over the log


def maskable(values: Iterable[str]) -> list[str]:
    """What to hide in logs: each value of at least MIN_MASKED characters, and each such line of a multi-line
    value (a PEM key printed line by line), longest first so that a value's part never masks before it."""
    found: set[str] = set()
    for value in values:
        if len(value) >= MIN_MASKED:
            found.add(value)
        if "\n" in value or "\r" in value:
            found.update(line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_MASKED)
    return sorted(found, key=len, reverse=True)


def mask(text: str, hidden: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``hidden`` (``maskable``'s output) replaced by MASK."""
    for value in hidden:
        if value in text:
            text = text.replace(value, MASK)
    return text


class LogBook:
    def __init__(self, root: Path, max_bytes: int = 2 * 1024 * 1024, masker: Masker | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.masker = masker
        self._followers: dict[tuple[str, LogKind], set[asyncio.Queue[str | None]]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Followers live on this loop; writers on other threads hand lines over to it."""
        self._loop = loop

    def path(self, space_id: str, kind: LogKind) -> Path:
        return self.root / space_id / f"{kind}.log"

    def sink(self, space_id: str, kind: LogKind) -> LogSink:
        return lambda text: self.write(space_id, kind, text)

    def write(self, space_id: str, kind: LogKind, text: str) -> None:
        """Append ``text`` (one or more lines) to the log and wake its followers. Thread-safe enough:
        appends are line-sized writes in append mode."""
        if not text:
            return
        if self.masker is not None:
            text = self.masker(space_id, text)
        if not text.endswith("\n"):
            text += "\n"
        path = self.path(space_id, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", errors="replace") as f:
            f.write(text)
        self._trim(path)
        self._publish(space_id, kind, text)

    def start_section(self, space_id: str, kind: LogKind, title: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.write(space_id, kind, f"===== {stamp} {title} =====")

    def clear(self, space_id: str, kind: LogKind) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(space_id, kind).unlink()

    def read(self, space_id: str, kind: LogKind) -> str:
        try:
            return self.path(space_id, kind).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, space_id: str, kind: LogKind, lines: int = 30) -> str:
        return "\n".join(self.read(space_id, kind).splitlines()[-lines:])

    async def follow(self, space_id: str, kind: LogKind) -> AsyncIterator[str]:
        """Yield what is in the log now, then every new chunk until ``close_followers``."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        key = (space_id, kind)
        self._followers[key].add(queue)
        try:
            existing = self.read(space_id, kind)
            if existing:
                yield existing
            while (chunk := await queue.get()) is not None:
                yield chunk
        finally:
            self._followers[key].discard(queue)

    def close_followers(self, space_id: str, kind: LogKind) -> None:
        self._publish(space_id, kind, None)

    def _publish(self, space_id: str, kind: LogKind, text: str | None) -> None:
        queues = list(self._followers.get((space_id, kind), ()))
        if not queues:
            return
        for queue in queues:
            if self._loop is not None and self._loop.is_running():
                self._loop.call_soon_threadsafe(queue.put_nowait, text)
            else:
                queue.put_nowait(text)

    def _trim(self, path: Path) -> None:
        """Keep the newest half when a log outgrows its bound, cut at a line break."""
        size = path.stat().st_size
        if size <= self.max_bytes:
            return
        data = path.read_bytes()[-self.max_bytes // 2:]
        cut = data.find(b"\n")
        path.write_bytes(b"[... older lines dropped ...]\n" + data[cut + 1:])
