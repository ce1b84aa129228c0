"""The one composition root: builds every component from Settings in order, hands each its collaborators,
registers listeners, and owns the start and stop order. Nothing else wires components together."""

from spaces_runtime.wiring.build import build_platform
from spaces_runtime.wiring.platform import Platform

__all__ = ["Platform", "build_platform"]
