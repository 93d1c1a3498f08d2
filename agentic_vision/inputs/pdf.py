"""PDF inputs: pages rendered with pypdfium2, for the model and for the code.

Each chosen page becomes a PNG in the sandbox's working directory at full
resolution (300 dpi, less for pages so large that this would exceed
``PAGE_MAX_PIXELS``), so code crops a page like any photo; the model sees
each page downscaled to its budget.  The PDF itself goes in too, so code can
render other pages (pypdfium2 is installed inside the sandbox as well).

PDFium is a C parser of untrusted input, so it never runs in this process:
``pdf_child`` renders in a jailed child (``sandboxing.parser_jail``) with
memory, CPU-time and wall-clock caps, killed when the request is cancelled.
The host reads JSON and images from it and checks them (format, size,
dimensions) without decoding the pixels.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..images import check_output_image
from ..models.base import ModelImage
from ..sandboxing.parser_jail import ParserJail
from .images import PreparedImage

DEFAULT_PAGES = 3  # without --page: the first few, and the model is told about the rest
MAX_PAGES = 100  # rendered for one input at once
FULL_DPI = 300
PAGE_MAX_PIXELS = 50_000_000
CHILD_PROGRAM = (Path(__file__).with_name("pdf_child.py")).read_text()
# Real PDFs start with the header; some carry a byte-order mark or blank lines
# before it (PDFium and Acrobat look through the first 1024 bytes).  Only that
# kind of prefix is accepted: bytes that are anything else first (an image
# with "%PDF-" in a text chunk) are not a PDF here.
_LEADING = re.compile(rb"(?:\xef\xbb\xbf)?[\x00\t\n\f\r ]{0,16}%PDF-")


def is_pdf(data: bytes) -> bool:
    return _LEADING.match(data[:40]) is not None


def parse_pages(spec: str | int | None, count: int, name: str) -> list[int] | None:
    """1-based pages from "3", "2-5", "1,3,7-9" (or an int) as 0-based indices; None: the default."""
    if spec is None or spec == "":
        return None
    text = str(spec).replace(" ", "")
    pages: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise InputError(f"--page {spec!r} is not a page list: write e.g. 3, 2-5 or 1,3,7-9")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if first < 1 or last < first:
            raise InputError(f"--page {spec!r}: pages count from 1 and ranges go upwards (e.g. 2-5)")
        if last > count:
            raise InputError(f"{name} has {count} page{'s' if count != 1 else ''}: --page {spec} asks for page {last}")
        if last - first + 1 + len(pages) > MAX_PAGES:
            raise InputError(f"--page {spec} asks for more than {MAX_PAGES} pages at once: pick fewer")
        seen = set(pages)
        pages += [p - 1 for p in range(first, last + 1) if p - 1 not in seen]
    return pages


@dataclass
class RenderedPdf:
    pages: list[PreparedImage]
    page_count: int
    note: str  # for the model: which pages it sees, where they are, how to get the others


def render_pdf(data: bytes, name: str, pages: str | int | None = None, max_side: int = 1536,
               max_pixels: int = PAGE_MAX_PIXELS, stop: threading.Event | None = None) -> RenderedPdf:
    """The chosen pages, rendered in a jailed child; InputError (one line) for a bad or
    too costly PDF, or when ``stop`` is set (the request was cancelled)."""
    parse_pages(pages, sys.maxsize, name)  # the syntax, before anything starts
    settings = {"dpi": FULL_DPI,
                "max_pixels": min(PAGE_MAX_PIXELS, max_pixels), "max_side": max_side}
    stem = name[:-4] if name.lower().endswith(".pdf") else name
    with ParserJail(CHILD_PROGRAM, name, modules=("pypdfium2", "pypdfium2_raw", "PIL"), stop=stop) as jail:
        jail.start(settings, data)
        head = _json(jail, name)
        if "error" in head:
            raise _open_error(data, name)
        count = head.get("count")
        if not isinstance(count, int) or not 0 <= count <= 10**7:
            raise _garbled(name)
        if count == 0:
            raise InputError(f"{name} has no pages")
        chosen = parse_pages(pages, count, name)  # now against the real page count
        default = chosen is None
        if default:
            chosen = list(range(min(DEFAULT_PAGES, count)))
        jail.send({"pages": chosen})
        rendered = [_page(jail, i, stem, name, max_side) for i in chosen]
        if _json(jail, name) != {"done": True}:
            raise _garbled(name)
        jail.finish()
    shown = ", ".join(str(i + 1) for i in chosen)
    files = ", ".join(p.name for p in rendered)
    note = (f"{name} has {count} page{'s' if count != 1 else ''}; "
            f"page{'s' if len(chosen) != 1 else ''} {shown} {'are' if len(chosen) != 1 else 'is'} shown above "
            f"and in the working directory as {files} (full resolution).")
    if len(chosen) < count:
        which = f"Only the first {len(chosen)} are shown by default; the" if default else "The"
        note += (f" {which} other pages are not shown: render one with "
                 f"pypdfium2.PdfDocument('{name}')[N - 1].render(scale={FULL_DPI}/72).to_pil().")
    return RenderedPdf(rendered, count, note)


def _garbled(name: str) -> InputError:
    return InputError(f"{name} could not be rendered (the renderer answered out of turn): check the file")


def _json(jail: ParserJail, name: str) -> dict:
    """The next frame as a JSON object; the child running out of memory says so in one."""
    frame = jail.frame()
    if len(frame) > 65536:
        raise _garbled(name)
    try:
        value = json.loads(frame)
    except ValueError:
        raise _garbled(name) from None
    if not isinstance(value, dict):
        raise _garbled(name)
    if value.get("error") == "memory":
        raise jail.over_memory()
    return value


def _open_error(data: bytes, name: str) -> InputError:
    # PDFium's error code is process-wide and not always reset, so the bytes
    # decide what to say.
    if b"/Encrypt" in data:
        return InputError(f"{name} is encrypted (password-protected): save an unprotected copy "
                          "(e.g. qpdf --decrypt in.pdf out.pdf) and use that")
    if re.search(rb"/Count\s+0\b", data):
        return InputError(f"{name} has no pages")
    return InputError(f"{name} is not a readable PDF: it is damaged or not a PDF; check the file")


def _page(jail: ParserJail, index: int, stem: str, name: str, max_side: int) -> PreparedImage:
    meta = _json(jail, name)
    if meta.get("error") == "page" and meta.get("page") == index:
        detail = " ".join(str(meta.get("detail", "")).split())[:200]
        raise InputError(f"page {index + 1} of {name} cannot be rendered ({detail}): check the file")
    if meta.get("page") != index or not all(isinstance(meta.get(k), int) for k in ("width", "height", "dpi")):
        raise _garbled(name)
    png, jpeg = jail.frame(), jail.frame()
    try:  # the images' own headers, checked (not decoded); the child's labels are not trusted
        full = check_output_image(png, "image/png")
        view = check_output_image(jpeg, "image/jpeg")
    except ValueError:
        raise _garbled(name) from None
    if (full.mime_type, view.mime_type) != ("image/png", "image/jpeg") or \
            (full.width, full.height) != (meta["width"], meta["height"]) or max(view.width, view.height) > max_side:
        raise _garbled(name)
    page_name = f"{stem}-page-{index + 1}.png"
    model = ModelImage(jpeg, "image/jpeg", view.width, view.height, f"{name} page {index + 1}")
    note = f"page {index + 1} of {name} at {meta['dpi']} dpi"
    return PreparedImage(page_name, png, model, full.width, full.height, note)
