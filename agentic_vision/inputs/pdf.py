"""PDF inputs: pages rendered with pypdfium2, for the model and for the code.

Each chosen page becomes a PNG in the sandbox's working directory at full
resolution (300 dpi, less for pages so large that this would exceed
``PAGE_MAX_PIXELS``), so code crops a page like any photo; the model sees
each page downscaled to its budget.  The PDF itself goes in too, so code can
render other pages (pypdfium2 is installed inside the sandbox as well).
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass

from ..errors import InputError
from ..images import encode_for_model
from .images import PreparedImage

DEFAULT_PAGES = 3  # without --page: the first few, and the model is told about the rest
FULL_DPI = 300
PAGE_MAX_PIXELS = 50_000_000
_pdfium = threading.Lock()  # PDFium is not thread-safe


def is_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]


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
        pages += [p - 1 for p in range(first, last + 1) if p - 1 not in pages]
    return pages


@dataclass
class RenderedPdf:
    pages: list[PreparedImage]
    page_count: int
    note: str  # for the model: which pages it sees, where they are, how to get the others


def render_pdf(data: bytes, name: str, pages: str | int | None = None, max_side: int = 1536,
               max_pixels: int = PAGE_MAX_PIXELS) -> RenderedPdf:
    import pypdfium2 as pdfium

    with _pdfium:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            # PDFium's error code is process-wide and not always reset, so the
            # bytes decide what to say.
            if b"/Encrypt" in data:
                raise InputError(f"{name} is encrypted (password-protected): save an unprotected copy "
                                 "(e.g. qpdf --decrypt in.pdf out.pdf) and use that") from None
            if re.search(rb"/Count\s+0\b", data):
                raise InputError(f"{name} has no pages") from None
            raise InputError(f"{name} is not a readable PDF: it is damaged or not a PDF; check the file") from None
        try:
            count = len(pdf)
            if count == 0:
                raise InputError(f"{name} has no pages")
            chosen = parse_pages(pages, count, name)
            default = chosen is None
            if default:
                chosen = list(range(min(DEFAULT_PAGES, count)))
            stem = name[:-4] if name.lower().endswith(".pdf") else name
            rendered = [_page(pdf, i, stem, name, max_side, min(PAGE_MAX_PIXELS, max_pixels)) for i in chosen]
        finally:
            pdf.close()
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


def _page(pdf, index: int, stem: str, name: str, max_side: int, max_pixels: int) -> PreparedImage:
    page = pdf[index]
    try:
        width_pt, height_pt = page.get_size()
        scale = FULL_DPI / 72
        if width_pt * height_pt * scale * scale > max_pixels:
            scale = (max_pixels / (width_pt * height_pt)) ** 0.5
        try:
            image = page.render(scale=scale).to_pil()
        except Exception as exc:
            raise InputError(f"page {index + 1} of {name} cannot be rendered: the page is damaged; check the file") from None
    finally:
        page.close()
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    page_name = f"{stem}-page-{index + 1}.png"
    model = encode_for_model(image, max_side, label=f"{name} page {index + 1}")
    note = f"page {index + 1} of {name} at {scale * 72:.0f} dpi"
    return PreparedImage(page_name, buf.getvalue(), model, image.width, image.height, note)
