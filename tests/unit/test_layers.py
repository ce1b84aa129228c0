"""The import graph keeps its layers: a lower layer never reaches up into the HTTP server, the CLI or the wiring."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_checker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("check_layers", REPO / "scripts" / "check_layers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_crosses_the_layers_the_wrong_way() -> None:
    assert load_checker().violations(REPO) == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """It must catch a store that imports the server, including an import inside a function."""
    for package in ("spaces_runtime", "builder"):
        (tmp_path / package).mkdir()
    (tmp_path / "spaces_runtime" / "store.py").write_text("def f():\n    from spaces_runtime.server.api import x\n")
    (tmp_path / "builder" / "plan.py").write_text("import spaces_runtime.deploy.pipeline\n")
    found = load_checker().violations(tmp_path)
    assert found == ["spaces_runtime/store.py:2: store imports spaces_runtime.server.api",
                     "builder/plan.py:1: builder imports spaces_runtime.deploy.pipeline"]
