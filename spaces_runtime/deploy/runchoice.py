"""What a space runs on: its hardware tier and, on the swarm backend, how many replicas (pure).

The owner's setting (`spaces settings --hardware/--replicas`, the Hub's ``request_space_hardware``) wins over
the README (``suggested_hardware``, ``replicas``), which wins over the platform's default (SPACES_HARDWARE, one
replica). A tier is a set of caps (CPU, memory, pids, GPUs), scaled to the host and under the operator's
ceilings (SPACES_SANDBOX_MEMORY_MB/_CPUS/_PIDS) by the backend. Each choice says where it came from, so the build
log and the API can tell the owner why an app runs as it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spaces_runtime.errors import InvalidNameError

SWARM = "swarm"


@dataclass(frozen=True)
class Choice:
    value: str | int
    source: str  # "spaces settings", "README", "the platform's default"
    warning: str | None = None


def hardware(setting: str | None, suggested: object, default: str, tiers: Iterable[str]) -> Choice:
    """The tier a space runs on. A README tier this platform lacks (e.g. Hugging Face's ``zero-a10g``) is not an
    error: the Space was written for the Hub, so it runs on the default and the build log says so."""
    known = list(tiers)
    if setting:
        return Choice(setting, "spaces settings")
    if isinstance(suggested, str) and suggested:
        if suggested in known:
            return Choice(suggested, "README suggested_hardware")
        return Choice(default, "the platform's default",
                      f"README suggested_hardware {suggested!r} is not a tier here (known: {', '.join(known)}); "
                      f"it runs on {default}")
    return Choice(default, "the platform's default")


def replicas(setting: int | None, readme: object, backend: str) -> Choice:
    """How many instances serve the space: only the swarm backend runs more than one."""
    if setting:
        return Choice(setting, "spaces settings")
    if isinstance(readme, int) and readme > 1:
        if backend != SWARM:
            return Choice(1, "the platform's default",
                          f"README replicas: {readme}: the {backend} backend runs one instance per space "
                          "(replicas need `spaces serve --backend swarm`)")
        return Choice(readme, "README replicas")
    return Choice(1, "the platform's default")


def check_hardware(value: str, tiers: Iterable[str]) -> str:
    """A tier name an owner asks for, or a clear error listing the tiers."""
    known = list(tiers)
    if value not in known:
        raise InvalidNameError(f"hardware {value!r} is not a tier of this platform",
                               hint=f"use one of {', '.join(known)}")
    return value


def check_replicas(value: int, backend: str, most: int) -> int:
    if not 1 <= value <= most:
        raise InvalidNameError(f"replicas {value} is not a number of instances", hint=f"use 1 to {most}")
    if value > 1 and backend != SWARM:
        raise InvalidNameError(f"replicas {value}: this platform runs the {backend} backend, one instance per space",
                               hint="replicas need a platform started with `spaces serve --backend swarm`")
    return value


def of_card(setting_hardware: str | None, setting_replicas: int | None, card: dict[str, object], default: str,
            tiers: Iterable[str], backend: str) -> tuple[Choice, Choice]:
    """The same two choices from a space's record (its card holds the README's keys as last deployed)."""
    return (hardware(setting_hardware, card.get("suggested_hardware"), default, tiers),
            replicas(setting_replicas, card.get("replicas"), backend))
