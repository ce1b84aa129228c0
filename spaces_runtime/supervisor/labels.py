"""How the platform marks what it runs on an engine: labels naming the space and the platform on every container,
service and volume, so that a restarted platform takes over its own and leaves other platforms' alone (pure)."""

from __future__ import annotations

import hashlib
from pathlib import Path

SPACE_LABEL = "spaces-runtime.space"
PLATFORM_LABEL = "spaces-runtime.platform"
PORT_LABEL = "spaces-runtime.app-port"
# launch order, a number that grows with every launch, across platform restarts too: after a crash mid-redeploy
# the newest of a space's containers is the one adopted. The engine's creation times are no dependable order: whole
# seconds in its listing, and RFC 3339 strings with trailing zeros trimmed (".1Z" sorts after ".12Z") when inspected
GENERATION_LABEL = "spaces-runtime.generation"


def platform_id(data_dir: Path) -> str:
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
