"""Which models stay on the device: least-recently-used eviction under a memory budget, pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resident:
    name: str
    nbytes: int
    last_used: float


def choose_evictions(resident: list[Resident], incoming: str, incoming_bytes: int, budget_bytes: int,
                     pinned: frozenset[str] = frozenset()) -> list[str]:
    """Models to unload, least recently used first, so that ``incoming`` fits the budget.

    Pinned models and the incoming one are never chosen. When even evicting everything else cannot make
    room, everything evictable goes anyway: a model bigger than the budget still runs, alone.
    """
    used = sum(r.nbytes for r in resident if r.name != incoming)
    evictable = sorted((r for r in resident if r.name not in pinned and r.name != incoming),
                       key=lambda r: r.last_used)
    chosen: list[str] = []
    for r in evictable:
        if used + incoming_bytes <= budget_bytes:
            break
        chosen.append(r.name)
        used -= r.nbytes
    return chosen
