"""Train the shapes classifier on images this script draws, and export it as TorchScript.

    python examples/image-classifier/train.py      # needs torch (the runner extra); ~1 minute on 2 CPU cores

Writes model/shapes.pt (about 100 KB, committed) which the app uploads to the model runner. Deterministic
(seeded), so a rerun gives the same file contents up to torch's own nondeterminism.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

LABELS = ["circle", "square", "triangle"]
SIZE = 32
OUT = Path(__file__).resolve().parent / "model" / "shapes.pt"


def draw(label: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB image in [0, 1]: a filled shape of random size, place and colour on a noisy background."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    r = rng.uniform(6, 12)
    cx, cy = rng.uniform(r, SIZE - r, size=2)
    if label == 0:
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif label == 1:
        mask = (np.abs(xx - cx) <= r * 0.8) & (np.abs(yy - cy) <= r * 0.8)
    else:
        top = cy - r
        mask = (yy >= top) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - top) / 2)
    background = rng.uniform(0, 0.4, size=3)
    colour = rng.uniform(0.5, 1.0, size=3)
    img = np.where(mask[..., None], colour, background) + rng.normal(0, 0.05, (SIZE, SIZE, 3))
    return np.clip(img, 0, 1).astype(np.float32).transpose(2, 0, 1)


def dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n)
    images = np.stack([draw(int(y), rng) for y in labels])
    return torch.from_numpy(images), torch.from_numpy(labels)


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, len(LABELS)))


def train() -> float:
    torch.manual_seed(0)
    x, y = dataset(3000, seed=1)
    test_x, test_y = dataset(600, seed=2)
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(8):
        for i in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i]), y[i]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(test_x).argmax(1) == test_y).float().mean().item()
    OUT.parent.mkdir(exist_ok=True)
    torch.jit.save(torch.jit.script(net), str(OUT))
    return accuracy


if __name__ == "__main__":
    acc = train()
    print(f"test accuracy {acc:.3f}; wrote {OUT} ({OUT.stat().st_size} bytes)")
