"""Where each shown image came from, on the host side of the boundary.

The sandbox says where the images it tracked came from (sandbox/provenance.py);
that is untrusted data, checked here against the inputs: an unknown input, a
non-finite, empty or far-off box is refused, an axis-aligned box is clipped to
the input.  Images it could not follow are looked for in the inputs by
multi-scale template matching (OpenCV, when it is installed: it is in the
``test`` extra, not a core dependency) on downscaled grey copies, within fixed
pixel and time budgets; a match above ``MIN_SCORE`` is a source with
``how="matched"``.
"""

from __future__ import annotations

import io
import math
import time
import warnings

from PIL import Image as PILImage

from .values import Image, Source

MAX_INPUTS = 64  # inputs whose sizes are read; provenance naming any other is refused
MATCH_INPUTS = 8  # inputs searched for an untracked image
MATCH_INPUT_PIXELS = 40_000_000  # larger inputs are not decoded for matching
MATCH_SHOWN_PIXELS = 16_000_000  # larger shown images are not matched
MATCH_SECONDS = 2.0  # per run, all images together
COARSE_SIDE = 256
FINE_SIDE = 1024
MIN_SCORE = 0.9
MIN_TEMPLATE = 12
REFINE = 4  # coarse places refined


def input_sizes(inputs) -> dict[str, tuple[int, int]]:
    """name -> (width, height) of the inputs that are images (headers only)."""
    sizes = {}
    for f in list(inputs)[:MAX_INPUTS]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with PILImage.open(io.BytesIO(f.data)) as img:
                    sizes[f.name] = img.size
        except Exception:
            continue  # a CSV, a PDF: no region of it can be shown
    return sizes


def _finite(v, limit: float) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and abs(v) <= limit


def check_source(raw, sizes: dict[str, tuple[int, int]]) -> Source | None:
    """The sandbox's claim about one image, if it holds up against the inputs; else None."""
    if not isinstance(raw, dict) or raw.get("how") != "tracked":
        return None
    name, box, angle = raw.get("input"), raw.get("box"), raw.get("angle", 0)
    if not isinstance(name, str) or name not in sizes:
        return None
    if not isinstance(box, list) or len(box) != 4 or not all(_finite(v, 1e7) for v in box) or not _finite(angle, 360):
        return None
    w, h = sizes[name]
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        return None
    angle = float(angle)
    if angle == 0:
        x0, x1 = max(0.0, x0), min(float(w), x1)
        y0, y1 = max(0.0, y0), min(float(h), y1)
        if x1 - x0 < 1 or y1 - y0 < 1:
            return None  # nothing of the input in it
    else:
        # A turned box cannot be clipped and stay a box: its centre must be on
        # the input and its sides no longer than the input's diagonal.
        cx, cy, diagonal = (x0 + x1) / 2, (y0 + y1) / 2, math.hypot(w, h)
        if not (0 <= cx <= w and 0 <= cy <= h) or x1 - x0 > diagonal + 1 or y1 - y0 > diagonal + 1:
            return None
    return Source(name, (round(x0), round(y0), round(x1), round(y1)), round(angle, 2), "tracked", 1.0)


class Provenance:
    """Checks and finds the sources of one session's shown images."""

    def __init__(self, inputs) -> None:
        self.inputs = list(inputs)
        self.sizes = input_sizes(self.inputs)
        self._grey: dict[str, tuple] = {}  # name -> (coarse, coarse scale, fine, fine scale), made on first need

    def sources(self, metas: list[dict], images: list[Image]) -> list[Source | None]:
        deadline = time.monotonic() + MATCH_SECONDS
        found = []
        for meta, image in zip(metas, images):
            source = check_source(meta.get("source"), self.sizes)
            if source is None and time.monotonic() < deadline:
                source = self.match(image, deadline)
            found.append(source)
        return found

    # -- matching ---------------------------------------------------------------------

    def _prepared(self, name: str, data: bytes):
        if name not in self._grey:
            self._grey[name] = None
            w, h = self.sizes[name]
            if w * h <= MATCH_INPUT_PIXELS:
                try:
                    img = PILImage.open(io.BytesIO(data))
                    img.draft("L", (FINE_SIDE, FINE_SIDE))  # JPEG decodes at a fraction of the size
                    self._grey[name] = _pyramid(img.convert("L"), w)
                except Exception:
                    pass
        return self._grey[name]

    def match(self, image: Image, deadline: float) -> Source | None:
        try:
            import cv2  # optional: the test extra has it, the core does not
            import numpy as np
        except ImportError:
            return None
        if image.width * image.height > MATCH_SHOWN_PIXELS or min(image.width, image.height) < 8:
            return None
        try:
            shown = PILImage.open(io.BytesIO(image.data)).convert("L")
        except Exception:
            return None
        shown.thumbnail((FINE_SIDE, FINE_SIDE))
        shown_arr = np.asarray(shown)
        if float(shown_arr.std()) < 2.0:
            return None  # a flat image matches everywhere and means nothing
        best = None
        for f in self.inputs[:MATCH_INPUTS]:
            if f.name not in self.sizes or time.monotonic() > deadline:
                continue
            prepared = self._prepared(f.name, f.data)
            if prepared is None:
                continue
            hit = _search(cv2, np, shown_arr, prepared, deadline)
            if hit is not None and (best is None or hit[0] > best[0]):
                best = (hit[0], f.name, hit[1])
        if best is None or best[0] < MIN_SCORE:
            return None
        score, name, box = best
        w, h = self.sizes[name]
        x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
        return Source(name, (x0, y0, x1, y1), 0.0, "matched", round(min(1.0, score), 3))


def _pyramid(grey, full_width: int):
    import numpy as np

    coarse = grey.copy()
    coarse.thumbnail((COARSE_SIDE, COARSE_SIDE))
    fine = grey.copy()
    fine.thumbnail((FINE_SIDE, FINE_SIDE))
    return (np.asarray(coarse), coarse.width / full_width, np.asarray(fine), fine.width / full_width)


def _best(cv2, np, haystack, template):
    res = cv2.matchTemplate(haystack, template, cv2.TM_CCOEFF_NORMED)
    res = np.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)
    _, score, _, loc = cv2.minMaxLoc(res)
    return float(score), loc


def _search(cv2, np, shown, prepared, deadline):
    """(score, full-resolution box) of the best place for ``shown`` in one input."""
    coarse, cs, fine, fs = prepared
    ratio = shown.shape[0] / shown.shape[1]
    ch, cw = coarse.shape
    found = []
    width = float(cw)
    # Coarse: every size from the whole input down to MIN_TEMPLATE, 10% apart.
    while width >= MIN_TEMPLATE and time.monotonic() < deadline:
        tw, th = int(round(width)), int(round(width * ratio))
        width /= 1.1
        if th < MIN_TEMPLATE or th > ch or tw > cw:
            continue
        score, (x, y) = _best(cv2, np, coarse, cv2.resize(shown, (tw, th), interpolation=cv2.INTER_AREA))
        found.append((score, x / cs, y / cs, tw / cs, th / cs))
    # Fine: around the best few coarse places (a smooth patch also matches a smaller copy of
    # itself), sizes 1% apart, at up to FINE_SIDE.  Scores at different resolutions do not
    # compare: the coarse one only stands when no fine size fits.
    best = None
    fh, fw = fine.shape
    for coarse_score, x, y, w, h in sorted(found, reverse=True)[:REFINE]:
        if coarse_score < MIN_SCORE - 0.2:
            break  # hopeless (a plot, a drawing): not worth the fine search
        margin = 0.1 * max(w, h) + 4 / cs
        left, top = max(0, int((x - margin) * fs)), max(0, int((y - margin) * fs))
        right, bottom = min(fw, int(math.ceil((x + w + margin) * fs))), min(fh, int(math.ceil((y + h + margin) * fs)))
        window = fine[top:bottom, left:right]
        for k in range(-7, 8):
            if time.monotonic() > deadline:
                break
            tw = int(round(w * fs * (1 + 0.01 * k)))
            th = int(round(tw * ratio))
            if tw < MIN_TEMPLATE or th < MIN_TEMPLATE or th > window.shape[0] or tw > window.shape[1]:
                continue
            score, (px, py) = _best(cv2, np, window, cv2.resize(shown, (tw, th), interpolation=cv2.INTER_AREA))
            if best is None or score > best[0]:
                best = (score, (left + px) / fs, (top + py) / fs, tw / fs, th / fs)
    if best is None:
        best = max(found, default=None)
    if best is None:
        return None
    score, x, y, w, h = best
    return score, (round(x), round(y), round(x + w), round(y + h))
