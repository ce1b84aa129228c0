#!/usr/bin/env python3
"""Prints every import that crosses the platform's layers the wrong way; exits 1 if there is one.

    python scripts/check_layers.py          (from the repository root; every import, also inside functions)

Layers, lowest first: the leaves (config, errors, stages, names, events, logs, store, appfiles, sdk_eras) import only
leaves; builder imports leaves and itself; the components (supervisor, gateway, runner, appkit, deploy) never
import server, cli or wiring; the HTTP edges (server, and hub: the Hub's API and git hosting) never import
cli; wiring (the composition root) never imports cli.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LEAVES = {"config", "errors", "stages", "names", "events", "logs", "store", "appfiles", "sdk_eras", "__init__"}
ALIASES = {"client": "appkit"}  # spaces_runtime.client is the import path apps use for the appkit
TOP = {"server": {"cli"}, "hub": {"cli"}, "wiring": {"cli"}, "cli": set()}  # hub: the Hub's HTTP edge and git
NEVER_FROM_COMPONENTS = {"server", "cli", "wiring"}


def layer(module: str) -> str:
    """'spaces_runtime.deploy.pipeline' -> 'deploy'; 'builder.plan' -> 'builder'."""
    parts = module.split(".")
    name = "builder" if parts[0] == "builder" else parts[1] if len(parts) > 1 else "__init__"
    return ALIASES.get(name, name)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in ("spaces_runtime", "builder")]


def forbidden(source: str, target: str) -> bool:
    if source == target:
        return False
    if source in LEAVES:
        return target not in LEAVES
    if source == "builder":
        return target not in LEAVES
    if source in TOP:
        return target in TOP[source]
    return target in NEVER_FROM_COMPONENTS


def violations(root: Path) -> list[str]:
    found = []
    for package in ("spaces_runtime", "builder"):
        for path in sorted((root / package).rglob("*.py")):
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            source = layer(module)
            for line, name in imports(path):
                if name.split(".")[0] == "spaces_runtime" and name.count(".") == 0:
                    continue
                if forbidden(source, layer(name)):
                    found.append(f"{path.relative_to(root)}:{line}: {source} imports {name}")
    return found


def main() -> int:
    found = violations(Path(__file__).resolve().parent.parent)
    print("\n".join(found) if found else "no import crosses the layers the wrong way")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
