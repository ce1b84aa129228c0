"""Hardware tiers, Hugging Face's names and sizes, and the limits one of them gives an app on this host (pure).

Every backend applies the same limits (the process backend's cgroup, a container's, a swarm service's), so an app
meets the same ceilings wherever it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from spaces_runtime.config import Settings
from spaces_runtime.errors import BackendError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Tier:
    """A named hardware tier as Hugging Face sells it: caps, not reservations."""

    cpus: float
    memory_mb: int
    gpus: int = 0
    pids: int = 1024


# Hugging Face's tiers (vCPU, RAM, GPUs)
TIERS: dict[str, Tier] = {
    "cpu-basic": Tier(2, 16 * 1024),
    "cpu-upgrade": Tier(8, 32 * 1024),
    "t4-small": Tier(4, 15 * 1024, gpus=1),
    "t4-medium": Tier(8, 30 * 1024, gpus=1),
    "l4x1": Tier(8, 30 * 1024, gpus=1),
    "a10g-small": Tier(4, 15 * 1024, gpus=1),
    "a10g-large": Tier(12, 46 * 1024, gpus=1),
    "a100-large": Tier(12, 142 * 1024, gpus=1),
}


@dataclass(frozen=True)
class Limits:
    nano_cpus: int
    memory_bytes: int
    pids: int
    gpus: int

    @property
    def memory_label(self) -> str:
        """Docker's spelling: 512m, 2g."""
        mib = self.memory_bytes // MIB
        return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"


def limits_for(tier_name: str, tiers: dict[str, Tier], host_cpus: int, host_memory: int,
               host_gpus: int) -> Limits:
    """Scale a tier to this host: never more CPUs than it has, never more than half its memory (one app must
    not starve the platform and its neighbours), GPUs only when present."""
    tier = tiers.get(tier_name)
    if tier is None:
        raise BackendError(f"hardware tier '{tier_name}' is not one of {', '.join(sorted(tiers))}")
    cpus = min(tier.cpus, float(host_cpus))
    memory = min(tier.memory_mb * MIB, (host_memory // 2) // MIB * MIB)
    return Limits(nano_cpus=int(cpus * 1e9), memory_bytes=memory, pids=tier.pids,
                  gpus=min(tier.gpus, host_gpus))


def under_ceilings(limits: Limits, settings: Settings) -> Limits:
    """``limits`` under the operator's ceilings (SPACES_SANDBOX_MEMORY_MB, _CPUS, _PIDS: small hosts, tests), the
    same on every backend so an app meets the same limits wherever it runs (pure)."""
    if settings.sandbox_memory_mb is not None:
        limits = replace(limits, memory_bytes=min(limits.memory_bytes, settings.sandbox_memory_mb * MIB))
    if settings.sandbox_cpus is not None:
        limits = replace(limits, nano_cpus=min(limits.nano_cpus, int(settings.sandbox_cpus * 1e9)))
    if settings.sandbox_pids is not None:
        limits = replace(limits, pids=min(limits.pids, settings.sandbox_pids))
    return limits
