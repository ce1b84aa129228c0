"""What to collect, given what exists and what is used (pure: no I/O, so every rule has a unit test).

Items are virtualenvs, scratch folders of crashed builds, app and SDK images, build-cache records, and LFS
objects (only in `spaces gc`: they are the spaces' files, not the disk budget's cache; one stays while a commit of
any space references it, or while it arrived within the grace period: a push uploads its objects before the commits
that reference them). Something
stays while a space's record or a build in progress names it, while a process runs from it, while its build holds
its lock, or while a container was created from it. Without a budget (``spaces gc``) everything unused goes, except
build cache that was used lately; with a budget (the automatic pass) the least recently used unused things go until
the total fits, and nothing goes while it already fits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["env", "env-scratch", "image", "sdk-image", "build-cache", "uv-cache", "lfs-object"]
KINDS: tuple[Kind, ...] = ("env", "env-scratch", "image", "sdk-image", "build-cache", "uv-cache", "lfs-object")
CACHE_IDLE_S = 7 * 24 * 3600.0  # without a budget, build cache used within this stays: the next build needs it


@dataclass(frozen=True)
class Item:
    """One collectable thing. ``bytes`` is what removing it frees now: bytes it shares with something that stays
    (hard links into uv's cache, image layers other images have) are not counted."""

    kind: Kind
    key: str  # env hash, scratch folder name, image tag, build-cache record id
    bytes: int
    last_used: float  # epoch seconds: when it was built, or last used where that is known
    env_hash: str | None = None  # env-scratch: the hash being built; images: their labels (what built them)
    code_hash: str | None = None
    sdk_image: str | None = None  # app images: the SDK image they were built on
    image_id: str | None = None
    names: tuple[str, ...] = ()  # images: every tag it has here (all are removed)
    in_use: bool = False  # build cache: the engine says a build holds it
    collectable: bool = True  # False: measured for the budget, never removed (uv's cache, pruned instead)


@dataclass(frozen=True)
class Usage:
    """What is in use right now."""

    spaces_by_env: Mapping[str, Sequence[str]] = field(default_factory=dict)  # env hash → spaces naming it
    spaces_by_code: Mapping[tuple[str, str], Sequence[str]] = field(default_factory=dict)  # (env, code) → spaces
    busy_envs: Mapping[str, str] = field(default_factory=dict)  # env hash → why (a lock held, a process in it)
    container_images: frozenset[str] = frozenset()  # image ids some container (any state) was created from
    lfs_refs: Mapping[str, Sequence[str]] = field(default_factory=dict)  # LFS oid → spaces whose commits name it
    lfs_grace_s: float = 3600.0  # an LFS object that arrived within this stays: a push may reference it next


@dataclass(frozen=True)
class Verdict:
    item: Item
    collect: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    verdicts: tuple[Verdict, ...]
    budget_bytes: int | None = None

    @property
    def collected(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.collect]

    @property
    def kept(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.collect]

    @property
    def total_bytes(self) -> int:
        return sum(v.item.bytes for v in self.verdicts)

    @property
    def freed_bytes(self) -> int:
        return sum(v.item.bytes for v in self.collected)


def decide(items: Iterable[Item], usage: Usage, *, now: float, budget_bytes: int | None = None,
           cache_idle_s: float = CACHE_IDLE_S) -> Decision:
    """Which items go, each with the reason it goes or stays."""
    items = list(items)
    total = sum(item.bytes for item in items)
    excess = None if budget_bytes is None else total - budget_bytes
    if excess is not None and excess <= 0:
        fits = f"the total, {human_bytes(total)}, fits the disk budget of {human_bytes(budget_bytes or 0)}"
        return Decision(tuple(Verdict(item, False, fits) for item in items), budget_bytes)
    first = [item for item in items if item.kind != "sdk-image"]
    verdicts, excess = _choose(first, usage, now, excess, cache_idle_s, set())
    staying_sdks = {v.item.sdk_image for v in verdicts if v.item.kind == "image" and not v.collect}
    later, _ = _choose([item for item in items if item.kind == "sdk-image"], usage, now, excess, cache_idle_s,
                       {s for s in staying_sdks if s})
    return Decision(tuple(sorted([*verdicts, *later], key=_order)), budget_bytes)


def _choose(items: list[Item], usage: Usage, now: float, excess: int | None, cache_idle_s: float,
            staying_sdks: set[str]) -> tuple[list[Verdict], int | None]:
    """Verdicts for ``items``; with an ``excess`` (bytes over the budget) only the least recently used unused ones
    go until it is covered. Returns the excess left."""
    verdicts: list[Verdict] = []
    unused: list[Item] = []
    for item in items:
        why = why_kept(item, usage, now, cache_idle_s if excess is None else None, staying_sdks)
        if why is None:
            unused.append(item)
        else:
            verdicts.append(Verdict(item, False, why))
    for item in sorted(unused, key=lambda i: i.last_used):
        if excess is not None and excess <= 0:
            verdicts.append(Verdict(item, False, "unused, but the total already fits the disk budget"))
            continue
        verdicts.append(Verdict(item, True, why_collected(item, excess is not None)))
        if excess is not None:
            excess -= item.bytes
    return verdicts, excess


def why_kept(item: Item, usage: Usage, now: float, cache_idle_s: float | None,
             staying_sdks: set[str] | None = None) -> str | None:
    """Why ``item`` must stay, or None when nothing uses it. ``cache_idle_s`` None: build cache may go at any age."""
    if not item.collectable:
        return "measured, not collected (uv prunes its own cache)"
    if item.kind in ("env", "env-scratch"):
        return _env_kept(item, usage)
    if item.kind in ("image", "sdk-image"):
        return _image_kept(item, usage, staying_sdks or set())
    if item.kind == "lfs-object":
        return _lfs_kept(item, usage, now)
    if item.in_use:
        return "a build is using it"
    if cache_idle_s is not None and now - item.last_used < cache_idle_s:
        return f"used in the last {cache_idle_s / 86400:g} days: the next build may need it"
    return None


def _env_kept(item: Item, usage: Usage) -> str | None:
    env_hash = item.key if item.kind == "env" else item.env_hash or ""
    spaces = usage.spaces_by_env.get(env_hash)
    if item.kind == "env" and spaces:  # the space says more than the process running there (its app)
        return f"the environment of {', '.join(sorted(spaces))}"
    return usage.busy_envs.get(env_hash)


def _image_kept(item: Item, usage: Usage, staying_sdks: set[str]) -> str | None:
    if item.image_id is not None and item.image_id in usage.container_images:
        return "a container was created from it"
    if item.kind == "sdk-image":
        return "an app image that stays was built on it" if item.key in staying_sdks else None
    if item.env_hash is None or item.code_hash is None:
        return "it carries no env/code labels (built before they existed): left alone"
    spaces = usage.spaces_by_code.get((item.env_hash, item.code_hash))
    return f"the image of {', '.join(sorted(spaces))}" if spaces else None


def _lfs_kept(item: Item, usage: Usage, now: float) -> str | None:
    spaces = usage.lfs_refs.get(item.key)
    if spaces:
        return f"a commit of {', '.join(sorted(spaces))} references it"
    if now - item.last_used < usage.lfs_grace_s:
        return f"uploaded in the last {usage.lfs_grace_s / 60:g} minutes: a push in progress may reference it"
    return None


def why_collected(item: Item, over_budget: bool) -> str:
    prefix = "over the disk budget: " if over_budget else ""
    return prefix + {
        "env": "no space uses this environment and no process runs in it",
        "env-scratch": "left by a build that did not finish",
        "image": "no space runs this code with this environment, and no container uses it",
        "sdk-image": "no app image that stays was built on it",
        "build-cache": "no build is using it",
        "uv-cache": "pruned",
        "lfs-object": "no commit of any space references it (a deleted space's, or history rewritten)",
    }[item.kind]


def _order(verdict: Verdict) -> tuple[int, bool, str]:
    return KINDS.index(verdict.item.kind), not verdict.collect, verdict.item.key


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
