#!/usr/bin/env python
"""What rendering PDF pages in the jailed child costs, against rendering in-process.

    .venv/bin/python benchmarks/pdf_render.py [--repeat N] [--json]

Makes an A4 page of vector drawing and text with fpdf2 and measures, in the
same run:

- ``jailed``: ``render_pdf`` as the loop calls it (a child under bubblewrap
  where it works, or rlimits + seccomp; PDFium renders the page at 300 dpi,
  encodes it as PNG and the model's view as JPEG; the host checks both);
- ``in-process``: the same work done the old way, pypdfium2 in this process
  (render, PNG, view), with nothing between the host and PDFium.

It prints the median wall time of each for one page and for three pages,
and the ratio jailed / in-process (the price of the child: its start,
its imports and the copy of the images over a pipe).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))


def drawing(pages: int) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    for n in range(pages):
        pdf.add_page()
        pdf.set_font("helvetica", size=14)
        for i in range(60):
            pdf.line(10, 10 + i * 4.5, 200, 280 - i * 4.5)
            pdf.text(12, 12 + i * 4.5, f"room {n}.{i}: {3 + i / 10:.1f} m")
    return bytes(pdf.output())


def in_process(data: bytes, pages: int) -> None:
    import pypdfium2 as pdfium
    from agentic_vision.images import encode_for_model

    pdf = pdfium.PdfDocument(data)
    for index in range(pages):
        image = pdf[index].render(scale=300 / 72).to_pil()
        image.save(io.BytesIO(), format="PNG", compress_level=1)
        encode_for_model(image, 1536)
    pdf.close()


def jailed(data: bytes, pages: int) -> None:
    from agentic_vision.inputs.pdf import render_pdf

    render_pdf(data, "drawing.pdf", pages=f"1-{pages}")


def median_time(work, data: bytes, pages: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work(data, pages)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from agentic_vision.sandboxing.parser_jail import describe

    rows = []
    for pages in (1, 3):
        data = drawing(pages)
        jailed(data, pages)  # warm-up: the interpreter probe and the seccomp filter are cached
        base = median_time(in_process, data, pages, args.repeat)
        jail = median_time(jailed, data, pages, args.repeat)
        rows.append({"pages": pages, "jailed_s": round(jail, 3), "in_process_s": round(base, 3),
                     "ratio": round(jail / base, 2)})
    if args.json:
        print(json.dumps({"jail": describe(), "rows": rows}, indent=1))
        return
    print(f"jail: {describe()}; medians of {args.repeat}")
    print(f"{'pages':>5} {'jailed':>9} {'in-process':>11} {'ratio':>6}")
    for row in rows:
        print(f"{row['pages']:>5} {row['jailed_s']:>8.2f}s {row['in_process_s']:>10.2f}s {row['ratio']:>5.2f}x")


if __name__ == "__main__":
    main()
