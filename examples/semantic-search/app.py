"""Semantic search over a small built-in corpus; embeddings come from the platform's model runner."""

from __future__ import annotations

import gradio as gr
import numpy as np

from spaces_runtime.client import pipeline

CORPUS = [
    "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "A sourdough starter is a culture of wild yeast and lactic acid bacteria.",
    "The Rust borrow checker enforces that references never outlive their data.",
    "Honey bees communicate the direction of flowers with a waggle dance.",
    "Jupiter is the largest planet in the solar system, a gas giant.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "The Great Barrier Reef is the world's largest coral reef system.",
    "Python's asyncio runs many coroutines on a single thread with an event loop.",
    "Marathon runners train their aerobic base with long, slow runs.",
    "Origami is the Japanese art of folding paper into shapes.",
    "Vaccines train the immune system to recognise a pathogen.",
]

embed = pipeline("feature-extraction", model="minilm")
_corpus_vectors: np.ndarray | None = None


def corpus_vectors() -> np.ndarray:
    global _corpus_vectors
    if _corpus_vectors is None:  # first search, not import: the runner may still be starting then
        _corpus_vectors = embed(CORPUS)
    return _corpus_vectors


def search(query: str, k: int = 3) -> list[list[object]]:
    if not query.strip():
        return []
    scores = corpus_vectors() @ embed([query])[0]  # vectors are normalised: dot product = cosine
    best = np.argsort(-scores)[: int(k)]
    return [[CORPUS[i], round(float(scores[i]), 4)] for i in best]


with gr.Blocks(title="Semantic Search") as demo:
    gr.Markdown("# 🔎 Semantic Search\nRanks passages by meaning (all-MiniLM-L6-v2 on the model runner).")
    query = gr.Textbox(label="Question", placeholder="which insect dances?")
    k = gr.Slider(1, len(CORPUS), value=3, step=1, label="Results")
    table = gr.Dataframe(headers=["passage", "score"], label="Best matches")
    query.submit(search, [query, k], table, api_name="search")
    gr.Button("Search").click(search, [query, k], table)

if __name__ == "__main__":
    demo.launch()
