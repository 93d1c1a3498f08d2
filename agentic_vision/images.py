"""Checking images on the host side of the boundary.

Bytes from the sandbox are untrusted: they are decoded only by formats we
expect, with a pixel limit, before anyone treats them as an image.
"""

from __future__ import annotations

import io
import warnings
from PIL import Image as PILImage

from .models.base import ModelImage
from .values import Image

MAX_PIXELS = 64_000_000
_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def sniff_image(data: bytes) -> str | None:
    """The image MIME type the magic number says (PNG, JPEG, WEBP, GIF, HEIC), or None.

    Only the first bytes are looked at, nothing is decoded: this names a format,
    it does not vouch for the image (``check_output_image`` does that).
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    # HEIF family: an ISO-BMFF "ftyp" box whose major brand is a HEIC/HEIF one.
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "image/heic"
    return None


def check_output_image(data: bytes, mime_type: str) -> Image:
    """Validates an image the sandbox returned; raises ValueError if it is not one."""
    if not data:
        raise ValueError("empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data), formats=list(_FORMATS))
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{img.width}x{img.height} pixels is over the limit")
            img.verify()
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"not a valid image ({type(exc).__name__})") from None
    # The MIME type is read from the bytes; the sandbox's label is not trusted.
    return Image(data=data, mime_type=_FORMATS[img.format], width=img.width, height=img.height)


# -- inputs: what the user gives, made safe for the sandbox and the model ---------------

# -- what goes to the model (inputs are prepared in agentic_vision.inputs) ---------------

MODEL_FORMATS = ("image/png", "image/jpeg", "image/webp")


def model_ready(img) -> "PILImage.Image":
    """Modes the model APIs take: RGB, or RGBA where transparency matters, or L."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        import numpy as np  # heavy, and only for these rare 16-bit and float modes

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else arr * 0
        img = PILImage.fromarray(scaled.round().astype("uint8"), "L")
    if img.mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGB")  # CMYK, YCbCr, 1, LAB, HSV
    return img


def encode_for_model(img, max_side: int, label: str = "") -> ModelImage:
    img = model_ready(img)
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        # resize() makes only the small image (reduce() first): no full-size copy.
        img = img.resize(size, PILImage.LANCZOS, reducing_gap=3.0)
    buf = io.BytesIO()
    if img.mode == "RGBA":
        img.save(buf, format="PNG", optimize=False)
        mime = "image/png"
    else:
        img.save(buf, format="JPEG", quality=90)
        mime = "image/jpeg"
    return ModelImage(buf.getvalue(), mime, img.width, img.height, label)


def to_model_image(image: Image, max_side: int, label: str = "") -> ModelImage:
    """An image a run produced, as the model will see it."""
    if max(image.width, image.height) <= max_side and image.mime_type in MODEL_FORMATS:
        return ModelImage(image.data, image.mime_type, image.width, image.height, label)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        with PILImage.open(io.BytesIO(image.data), formats=list(_FORMATS)) as img:
            # The size comes from the header; decoding is what costs, so check first.
            if img.size != (image.width, image.height) or img.width * img.height > MAX_PIXELS:
                raise ValueError(f"an image of {img.width}x{img.height} pixels cannot be shown to the model")
            img.load()
            return encode_for_model(img, max_side, label)
