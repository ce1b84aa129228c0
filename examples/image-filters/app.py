"""Classic image filters with Pillow: pick a filter, set its strength, compare before and after."""

from collections.abc import Callable
from pathlib import Path

import gradio as gr
from PIL import Image, ImageFilter, ImageOps

HERE = Path(__file__).parent
MAX_SIDE = 2048  # keeps a phone photo responsive on a small CPU


def grayscale(img: Image.Image, strength: int) -> Image.Image:
    gray = ImageOps.grayscale(img).convert("RGB")
    return Image.blend(img, gray, min(1.0, strength / 5))


def blur(img: Image.Image, strength: int) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=strength))


def sharpen(img: Image.Image, strength: int) -> Image.Image:
    return img.filter(ImageFilter.UnsharpMask(radius=2, percent=60 * strength, threshold=2))


def edges(img: Image.Image, strength: int) -> Image.Image:
    found = ImageOps.grayscale(img).filter(ImageFilter.FIND_EDGES)
    boosted = found.point(lambda v: min(255, v * strength))
    return ImageOps.invert(boosted).convert("RGB")


def posterize(img: Image.Image, strength: int) -> Image.Image:
    return ImageOps.posterize(img, bits=max(1, 8 - (strength * 7 + 5) // 10))


def sepia(img: Image.Image, strength: int) -> Image.Image:
    toned = ImageOps.colorize(ImageOps.grayscale(img), black="#2e1f0f", white="#fff1d6", mid="#a8825a")
    return Image.blend(img, toned, min(1.0, strength / 5))


def pixelate(img: Image.Image, strength: int) -> Image.Image:
    block = 2 + 2 * strength
    small = img.resize((max(1, img.width // block), max(1, img.height // block)), Image.Resampling.BILINEAR)
    return small.resize(img.size, Image.Resampling.NEAREST)


def invert(img: Image.Image, strength: int) -> Image.Image:
    return Image.blend(img, ImageOps.invert(img), min(1.0, strength / 5))


FILTERS: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    "Grayscale": grayscale,
    "Blur": blur,
    "Sharpen": sharpen,
    "Edges": edges,
    "Posterize": posterize,
    "Sepia": sepia,
    "Pixelate": pixelate,
    "Invert": invert,
}


def apply_filter(image: Image.Image, filter_name: str = "Grayscale", strength: float = 5) -> Image.Image:
    """The image with one filter applied; strength runs from 1 (subtle) to 10 (strong)."""
    if image is None:
        raise gr.Error("Upload an image first.")
    if filter_name not in FILTERS:
        raise gr.Error(f"Unknown filter '{filter_name}'; choose one of {', '.join(FILTERS)}.")
    img = ImageOps.exif_transpose(image).convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE))
    return FILTERS[filter_name](img, int(strength))


demo = gr.Interface(
    fn=apply_filter,
    inputs=[
        gr.Image(type="pil", label="Original", sources=["upload", "clipboard"]),
        gr.Dropdown(list(FILTERS), value="Grayscale", label="Filter"),
        gr.Slider(1, 10, value=5, step=1, label="Strength"),
    ],
    outputs=gr.Image(type="pil", format="png", label="Filtered"),
    examples=[
        [str(HERE / "examples" / "sunset.png"), "Posterize", 6],
        [str(HERE / "examples" / "sunset.png"), "Sepia", 5],
        [str(HERE / "examples" / "shapes.png"), "Edges", 4],
        [str(HERE / "examples" / "shapes.png"), "Pixelate", 3],
    ],
    cache_examples=False,
    title="🎨 Image Filters",
    description=(
        "Eight classic filters made with Pillow — grayscale, blur, sharpen, edges, posterize, sepia, "
        "pixelate and invert. Upload a picture (or pick an example), choose a filter and a strength."
    ),
    article=(
        "Call it from code: `Client(url).predict(handle_file('photo.jpg'), 'Blur', 5, "
        "api_name='/apply_filter')` returns the path of the filtered PNG."
    ),
    api_name="apply_filter",
    flagging_mode="never",
)

if __name__ == "__main__":
    demo.launch(theme=gr.themes.Soft())
