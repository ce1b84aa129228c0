"""LFS objects for `spaces gc`: which are stored, which commits reference them, and their removal.

An object is removed when no commit of any space references it (every repository's refs and recorded deploys:
a deleted space's repository is gone, and history a force-push rewrote is not reachable) and nothing uploaded or
named it within the grace period. Removal looks again under the store's lock, so an upload that arrives after the
survey keeps its object. A space that holds an object its own commits no longer reference stops holding it (its
quota gets the bytes back) even where another space's commits keep the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spaces_runtime.housekeeping.gc import Item

if TYPE_CHECKING:
    from spaces_runtime.hub.commits import SpaceCommits


@dataclass
class LfsSurvey:
    items: list[Item] = field(default_factory=list)
    refs: dict[str, list[str]] = field(default_factory=dict)  # oid → spaces whose commits reference it
    released: list[tuple[str, str]] = field(default_factory=list)  # (space, oid): held, no longer referenced


def survey_lfs(commits: SpaceCommits) -> LfsSurvey:
    refs = commits.lfs_references()
    survey = LfsSurvey(refs=refs)
    for stored in commits.lfs.stored():
        survey.items.append(Item("lfs-object", stored.oid, stored.size, stored.last_used, names=stored.holders))
        referencing = set(refs.get(stored.oid, ()))
        if referencing:
            survey.released += [(space, stored.oid) for space in stored.holders if space not in referencing]
    return survey


def remove_lfs(commits: SpaceCommits, item: Item, grace_s: float) -> int:
    """Bytes freed; -1 when it was uploaded or named again since the grace period began (kept)."""
    return commits.lfs.remove(item.key, time.time() - grace_s)


def release_lfs(commits: SpaceCommits, released: list[tuple[str, str]], grace_s: float) -> None:
    before = time.time() - grace_s
    for space_id, oid in released:
        commits.lfs.release(space_id, oid, before)
