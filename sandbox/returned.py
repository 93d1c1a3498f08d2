"""Images a run shows, made small enough to go back: downscaled with a note, never dropped.

A crop of a 100-megapixel photo easily exceeds the per-image limits as a
PNG; the model sees at most ~1.5k pixels a side anyway, so such an image
goes back as JPEG at full size if that fits, else halved until it fits, and
the model is told what happened.  Runs inside the sandbox; imports nothing
from the host.
"""

from __future__ import annotations

import io


def encode_png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # ~6x faster than the default, ~20% larger
    return buf.getvalue()


def encode_jpeg(img) -> bytes:
    buf = io.BytesIO()
    rgb = img if img.mode in ("RGB", "L") else img.convert("RGB")
    rgb.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def fit(img, max_bytes: int, max_pixels: int):
    """(bytes, mime type, note or None) for a PIL image in a returnable mode."""
    from PIL import Image

    size = img.size
    note = None
    if img.width * img.height > max_pixels:
        scale = (max_pixels / (img.width * img.height)) ** 0.5
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.LANCZOS,
                         reducing_gap=3.0)
    data = encode_png(img)
    mime = "image/png"
    while len(data) > max_bytes:
        if mime == "image/png":
            data, mime = encode_jpeg(img), "image/jpeg"
            continue
        if max(img.size) <= 64:
            return None, None, f"an image of {size[0]}x{size[1]} pixels could not be made small enough to return"
        img = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.LANCZOS, reducing_gap=3.0)
        data = encode_jpeg(img)
    if img.size != size:
        note = (f"an image of {size[0]}x{size[1]} pixels was too large to return as it is; it comes back "
                f"downscaled to {img.width}x{img.height} (crop the region you need to see it at full resolution)")
    elif mime == "image/jpeg":
        note = (f"an image of {size[0]}x{size[1]} pixels was larger than {max_bytes // 2**20} MiB as PNG; "
                "it comes back as JPEG at full size")
    return data, mime, note
