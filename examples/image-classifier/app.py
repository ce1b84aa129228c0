"""Streamlit shape classifier: a TorchScript CNN trained by train.py, served by the platform's model runner."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from spaces_runtime.client import pipeline

LABELS = ["circle", "square", "triangle"]


@st.cache_resource
def classifier():  # type: ignore[no-untyped-def]
    """The model file is declared in README.md (runner_models:): the platform registered it with the runner at
    deploy, so this app only asks for it by name."""
    return pipeline("image-classification", model="shapes")


def sample(shape: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (128, 128), tuple(int(c) for c in rng.integers(0, 100, 3)))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(130, 255, 3))
    r, cx, cy = int(rng.integers(25, 45)), int(rng.integers(45, 83)), int(rng.integers(45, 83))
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        draw.rectangle([cx - r * 0.8, cy - r * 0.8, cx + r * 0.8, cy + r * 0.8], fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return img


st.title("🔺 Shape Classifier")
st.caption("A tiny CNN (TorchScript) on the platform's model runner. Upload an image or draw a sample.")
source = st.radio("Image", ["sample", "upload"], horizontal=True)
if source == "upload":
    uploaded = st.file_uploader("An image of a circle, square or triangle", type=["png", "jpg", "jpeg"])
    image = Image.open(uploaded) if uploaded else None
else:
    shape = st.selectbox("Shape to draw", LABELS)
    seed = st.number_input("Seed", value=0, step=1)
    image = sample(shape, int(seed))

if image is not None:
    st.image(image, width=192)
    predictions = classifier()(image, top_k=3)
    st.subheader(f"Prediction: {predictions[0]['label']}")
    for p in predictions:
        st.progress(p["score"], text=f"{p['label']}: {p['score']:.3f}")
