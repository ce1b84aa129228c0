"""Rule-based sentiment and text statistics: a small, fully deterministic text demo.

No model download: a hand-written lexicon with negation and intensifier handling, so the same text always
gives the same answer (which is what makes it a good smoke test for a Spaces platform).
"""

import math
import re
from collections import Counter

import gradio as gr


def wordlist(text: str) -> list[str]:
    return text.split()


# word -> weight; strong words count double
LEXICON = {
    **dict.fromkeys(wordlist("good great nice happy like fun fast helpful beautiful clean easy useful"), 1),
    **dict.fromkeys(wordlist("best love excellent amazing wonderful fantastic perfect delightful"), 2),
    **dict.fromkeys(wordlist("bad slow sad boring broken ugly hard bug confusing dislike worse"), -1),
    **dict.fromkeys(wordlist("worst hate terrible awful horrible useless disaster"), -2),
}
NEGATIONS = set(wordlist("not no never isn't wasn't don't doesn't didn't can't won't hardly"))
INTENSIFIERS = {"very": 1.5, "really": 1.5, "so": 1.5, "extremely": 2.0, "super": 1.5, "quite": 1.25}
STOPWORDS = set(
    wordlist(
        "a an and are as at be but by for i in is it of on or so that the this to was we with you my me its "
        "it's were could would not all am have has had very really there they"
    )
)
WORDS_PER_MINUTE = 238  # average silent reading speed for adults

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|[0-9]+")


def word_weight(words: list[str], i: int) -> float:
    """Lexicon weight of words[i], flipped by a negation and scaled by an intensifier just before it."""
    weight = float(LEXICON.get(words[i], 0))
    if not weight:
        return 0.0
    window = words[max(0, i - 3) : i]
    if window:
        weight *= INTENSIFIERS.get(window[-1], 1.0)
    if any(w in NEGATIONS for w in window):
        weight = -weight
    return weight


def confidences(score: float) -> dict[str, float]:
    """Softmax over three logits; neutral wins only near zero, so the label always follows the score's sign."""
    logits = {"positive": 2 * score, "negative": -2 * score, "neutral": 0.8 - 2 * abs(score)}
    top = max(logits.values())
    exps = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exps.values())
    return {k: round(v / total, 4) for k, v in exps.items()}


def text_stats(text: str, words: list[str], top_k: int) -> dict:
    sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()]
    content = [w for w in words if w not in STOPWORDS and w.isalpha()]
    return {
        "characters": len(text),
        "words": len(words),
        "sentences": len(sentences),
        "avg_word_length": round(sum(map(len, words)) / len(words), 2) if words else 0.0,
        "reading_time_seconds": math.ceil(len(words) / WORDS_PER_MINUTE * 60),
        "top_words": [[w, n] for w, n in Counter(content).most_common(int(top_k))],
    }


def analyze(text: str, top_k: float = 5):
    """Sentiment label with confidences, text statistics, and each token marked + / - where it counts."""
    text = text or ""
    matches = list(WORD.finditer(text))
    words = [m.group().lower() for m in matches]
    weights = [word_weight(words, i) for i in range(len(words))]
    score = round(float(sum(weights)), 2)
    scores = confidences(score)
    label = max(scores, key=lambda k: scores[k])
    summary = {"sentiment": label, "score": score, **text_stats(text, words, int(top_k))}
    return scores, summary, highlight(text, matches, weights)


def highlight(text: str, matches: list[re.Match], weights: list[float]) -> list[tuple[str, str | None]]:
    """The original text cut into spans, each word that carries weight tagged positive or negative."""
    spans: list[tuple[str, str | None]] = []
    start = 0
    for match, weight in zip(matches, weights, strict=True):
        if weight:
            spans.append((text[start : match.start()], None))
            spans.append((match.group(), "positive" if weight > 0 else "negative"))
            start = match.end()
    spans.append((text[start:], None))
    return [span for span in spans if span[0]]


demo = gr.Interface(
    fn=analyze,
    inputs=[
        gr.Textbox(label="Text", lines=5, placeholder="Type or paste a review, a tweet, a paragraph..."),
        gr.Slider(1, 20, value=5, step=1, label="Top words to list"),
    ],
    outputs=[
        gr.Label(label="Sentiment", num_top_classes=3),
        gr.JSON(label="Statistics"),
        gr.HighlightedText(
            label="Words that moved the score",
            color_map={"positive": "green", "negative": "red"},
            combine_adjacent=False,
        ),
    ],
    examples=[
        ["I love this demo. The interface is clean and really easy to use!", 5],
        ["The build was slow and the logs were confusing. Not good.", 5],
        ["The meeting is at 10am in room 4.", 3],
        ["Not bad at all, but the docs could be better. Still, a wonderful little tool.", 8],
    ],
    cache_examples=False,
    title="💬 Sentiment & Text Stats",
    description=(
        "A rule-based sentiment analyzer (lexicon + negation + intensifiers) with word, sentence and "
        "reading-time statistics. Deterministic and model-free: it runs anywhere in milliseconds."
    ),
    article='Call it from code: `Client(url).predict("some text", api_name="/analyze")`.',
    api_name="analyze",
    flagging_mode="never",
)

if __name__ == "__main__":
    demo.launch(theme=gr.themes.Soft())
