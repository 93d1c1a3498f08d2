"""Very large test images, made on the spot (no download, no fixture files).

``photo`` looks like a photograph to a codec (smooth light plus sensor
noise, so a JPEG of it is as large and as slow to decode as a real one);
``plan`` like a scanned drawing (white paper, thin lines, small labels).
Both carry a small label that only a crop at full resolution can read.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _label(img: Image.Image, text: str, where: tuple[int, int], size: int) -> None:
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size)
    x, y = where
    draw.rectangle((x - 8, y - 8, x + size * len(text) * 0.7 + 8, y + size + 8), fill="white")
    draw.text((x, y), text, fill="black", font=font)


def photo(width: int, height: int, label: str = "SN 4711-B", seed: int = 0) -> Image.Image:
    """An RGB 'photo' of width x height with ``label`` small near the bottom right."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), dtype=np.uint8)
    x = np.linspace(0, 1, width, dtype=np.float32)
    # One band of noise, reused (shifted) for every band: random numbers are the slow part.
    noise = rng.integers(0, 24, size=(min(512, height), width + 512, 3), dtype=np.uint8)
    for i, row in enumerate(range(0, height, 512)):  # in bands: the float temporaries stay small
        n = min(512, height - row)
        y = np.linspace(row / height, (row + n) / height, n, dtype=np.float32)
        band = img[row:row + n]
        band[..., 0] = (60 + 150 * x[None, :] * (1 - y[:, None] / 2)).astype(np.uint8)
        band[..., 1] = (90 + 100 * y[:, None] + 30 * np.sin(x[None, :] * 40)).astype(np.uint8)
        band[..., 2] = (200 - 120 * y[:, None] * x[None, :]).astype(np.uint8)
        shift = (i * 97) % 512
        band += noise[:n, shift:shift + width]
    out = Image.fromarray(img, "RGB")
    del img
    _label(out, label, (width - 40 * len(label) - 200, height - 300), 40)
    return out


def plan(width: int, height: int, label: str = "ROOM 12: 4.35 m", step: int = 600) -> Image.Image:
    """A greyscale-looking RGB 'plan': a grid of walls and ``label`` in one room."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for x in range(0, width, step):
        draw.line((x, 0, x, height), fill=(40, 40, 40), width=6)
    for y in range(0, height, step):
        draw.line((0, y, width, y), fill=(40, 40, 40), width=6)
    _label(img, label, (step * 3 + 40, step * 2 + 40), 30)
    return img
