"""Input images: what the user gives, checked and made ready for the sandbox and the model.

Photos of 100+ megapixels are the point of looking closer, so the limit is
generous (``DEFAULT_MAX_PIXELS``, the ``max_pixels`` setting) and the
model's view is made without a second full-size copy: a JPEG is decoded at
a reduced scale (PIL's ``draft``, 1/2 to 1/8 in the DCT), anything else is
decoded once and shrunk in place (``thumbnail``, which ``reduce``s first).
The sandbox gets the original bytes, untouched, at full resolution.
"""

from __future__ import annotations

import io
import math
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from PIL import ImageOps

from ..errors import InputError
from ..images import encode_for_model, model_ready

if TYPE_CHECKING:
    from ..models.base import ModelImage

DEFAULT_MAX_PIXELS = 200_000_000
# The formats inputs may be in.  PIL knows forty more, some through other
# programs (EPS runs Ghostscript on the bytes) or rarely fuzzed decoders;
# none of them is opened for a client.
INPUT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")
# Orientations that swap width and height (EXIF 5-8).
_TRANSPOSED = (5, 6, 7, 8)
# PIL's bomb limit is a module global; it is set to the caller's limit only
# while an input is opened and decoded, one input at a time.
_pil_limit = threading.Lock()


@dataclass(frozen=True)
class PreparedImage:
    """An input image: ``sandbox_data`` goes into the working directory at full
    resolution, ``model`` is the (downscaled, converted) copy the model sees;
    ``note`` says what it is in the file listing the model gets."""

    name: str
    sandbox_data: bytes
    model: "ModelImage"
    width: int
    height: int
    note: str = ""


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.0f}" if pixels >= 10e6 else f"{pixels / 1e6:.1f}"


def too_large(name: str, max_pixels: int, size: tuple[int, int] | None = None, pixels: int | None = None) -> InputError:
    what = f"{size[0]}x{size[1]} pixels ({megapixels(size[0] * size[1])} MP)" if size else (
        f"{megapixels(pixels)} MP" if pixels else "too many pixels")
    return InputError(
        f"{name} is {what}, over the limit of {megapixels(max_pixels)} MP: if you trust the file, raise it "
        f"with --max-pixels (max_pixels= in Python), else downscale the image first"
    )


class _PilLimit:
    """PIL's bomb check at ``max_pixels`` (warning and error alike) for one open + decode."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels

    def __enter__(self):
        _pil_limit.acquire()
        self.saved = PILImage.MAX_IMAGE_PIXELS
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        # Our own check below names the size; PIL's is the backstop for
        # formats that grow while decoding (GIF frames), halved so that its
        # error (at twice the limit) fires at the limit itself.
        PILImage.MAX_IMAGE_PIXELS = max(1, self.max_pixels // 2)
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        return self

    def __exit__(self, *exc) -> None:
        PILImage.MAX_IMAGE_PIXELS = self.saved
        self.warnings.__exit__(*exc)
        _pil_limit.release()


def _bomb_pixels(exc: Exception) -> int | None:
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return int(match.group(1)) if match else None


def _open(data: bytes, name: str, max_pixels: int):
    """A lazily opened image (header read, nothing decoded) within the pixel limit;
    called inside ``_PilLimit``."""
    if not data:
        raise InputError(f"{name} is empty")
    limit, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None  # the check below names the size
    try:
        img = PILImage.open(io.BytesIO(data), formats=INPUT_FORMATS)
    except PILImage.UnidentifiedImageError:
        raise InputError(f"{name} is not a readable image in a format taken here (JPEG, PNG, GIF, WEBP, TIFF, "
                         "BMP, or a PDF): convert it to one of those") from None
    except Exception as exc:
        raise unreadable(name, exc) from None
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit
    if img.width * img.height > max_pixels:
        raise too_large(name, max_pixels, size=img.size)
    return img


def unreadable(name: str, exc: Exception) -> InputError:
    """Why an image cannot be read, in the user's words (not the decoder's exception name)."""
    if isinstance(exc, PILImage.UnidentifiedImageError):
        why = "not an image format it knows (JPEG, PNG, GIF, WEBP, TIFF, BMP...)"
    elif "truncated" in str(exc).lower() or isinstance(exc, EOFError):
        why = "the file is cut short"
    else:
        why = "its data is damaged"
    return InputError(f"{name} is not a readable image: {why}; check the file")


def _decode(img, name: str, max_pixels: int, reduce_to: int | None = None):
    """(image, EXIF orientation): ``img`` decoded in place, shrunk to ``reduce_to``
    on its longest side when given."""
    try:
        # A PNG's EXIF may follow the pixels: reading it can decode, so it is read here.
        orientation = img.getexif().get(0x0112, 1)
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
        if reduce_to is not None and max(img.size) > reduce_to:
            if img.mode == "P":
                # A palette cannot be averaged: colours first (the one full-size copy).
                img.load()
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode.startswith("I;16"):
                img.load()
                img = img.convert("I")
            if img.format == "JPEG":
                # Decode at the smallest DCT scale (1/2..1/8) still at least the target size.
                scale = reduce_to / max(img.size)
                img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
            img.thumbnail((reduce_to, reduce_to), PILImage.LANCZOS)
        img.load()
    except PILImage.DecompressionBombError as exc:
        raise too_large(name, max_pixels, pixels=_bomb_pixels(exc)) from None
    except Exception as exc:
        raise unreadable(name, exc) from None
    return img, orientation


def _with_extension(name: str, fmt: str | None) -> str:
    if "." in name:
        return name
    return f"{name}.{ {'JPEG': 'jpg'}.get(fmt or '', (fmt or 'png').lower()) }"


def prepare_image(
    source,
    name: str | None = None,
    max_side: int = 1536,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    note: str = "",
) -> PreparedImage:
    """Path, bytes or PIL image -> a checked input; raises InputError with one line."""
    if isinstance(source, PILImage.Image):
        buf = io.BytesIO()
        keep = source.mode in ("RGB", "RGBA", "L", "LA", "P", "1", "I;16")
        (source if keep else model_ready(source)).save(buf, format="PNG")
        data, name = buf.getvalue(), name or "image.png"
    elif isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), name or "image"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"image not found: {path}")
        data, name = path.read_bytes(), name or path.name
    with _PilLimit(max_pixels):
        img = _open(data, name, max_pixels)
        name = _with_extension(name, img.format)
        fmt = img.format
        width, height = img.size
        small, orientation = _decode(img, name, max_pixels, reduce_to=max_side)
        if orientation not in (0, 1):
            # Camera orientation: the model and the code must see the same
            # pixels, so the sandbox gets the upright image too (same name and
            # format).  Only here is a second full-size copy made.
            small = ImageOps.exif_transpose(small)
            data = _upright(data, name, max_pixels, fmt)
            if orientation in _TRANSPOSED:
                width, height = height, width
    model = encode_for_model(small, max_side, label=name)
    return PreparedImage(name, data, model, width, height, note)


def _upright(data: bytes, name: str, max_pixels: int, fmt: str | None) -> bytes:
    full, _ = _decode(_open(data, name, max_pixels), name, max_pixels)
    upright = ImageOps.exif_transpose(full)
    del full
    fmt = fmt if fmt in ("JPEG", "PNG", "WEBP", "TIFF", "BMP") else "PNG"
    buf = io.BytesIO()
    (upright if fmt != "JPEG" else model_ready(upright)).save(
        buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()
