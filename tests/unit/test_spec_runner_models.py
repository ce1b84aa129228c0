"""`runner_models:`: model files in the app folder that the platform registers with the runner at deploy."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.spec import load
from spaces_runtime.errors import SpecError

HEAD = "---\ntitle: M\nsdk: gradio\nrunner_models:\n"


def app(tmp_path: Path, models_yaml: str, files: tuple[str, ...] = ("model/net.pt",)) -> Path:
    (tmp_path / "README.md").write_text(HEAD + models_yaml + "---\n")
    (tmp_path / "app.py").write_text("import gradio\n")
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\0")
    return tmp_path


def test_declared_model_is_read(tmp_path: Path) -> None:
    spec = load(app(tmp_path, "  - name: net\n    file: model/net.pt\n    task: image-classification\n"
                              "    input_shape: [3, 8, 8]\n    labels: [a, b]\n"))
    assert spec.runner_models == [{"name": "net", "file": "model/net.pt", "task": "image-classification",
                                   "input_shape": [3, 8, 8], "labels": ["a", "b"]}]
    assert not spec.warnings


@pytest.mark.parametrize(("yaml", "message"), [
    ("  - name: net\n", "each entry needs name and file"),
    ("  - {name: net, file: model/net.pt, colour: red}\n", "found name, file, colour"),
    ("  - {name: Net!, file: model/net.pt}\n", "model name 'Net!' must be lower-case"),
    ("  - {name: net, file: model/net.pt, input_shape: 3}\n", "input_shape of model 'net' must be a list"),
    ("  - {name: net, file: missing.pt}\n", "names file 'missing.pt', which is not in the app folder"),
    ("  - {name: net, file: ../outside.pt}\n", "points outside the app folder"),
    ("  net.pt\n", "must be a list of mappings"),
])
def test_bad_declarations_name_the_line(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(SpecError, match="README.md line 4") as caught:
        load(app(tmp_path, yaml))
    assert message in str(caught.value)
