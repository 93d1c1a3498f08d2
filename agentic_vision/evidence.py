"""The trace's evidence map: each input with every region the model was shown drawn on it.

One inline SVG over each input image (as the model saw it, downscaled), in
the input's full-resolution coordinates (``viewBox``), so boxes need no
scaling; turned regions are turned rectangles.  Each region is a link to its
step (``#step-N``): no script.  Step images get a "from photo.jpg [...]"
caption line.
"""

from __future__ import annotations

import base64
from html import escape

from .loop.result import AgentResult
from .values import Image, Source

CSS = """
.emap { position:relative; display:inline-block; max-width:100%; margin:6px 0 10px; }
.emap img { display:block; max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
.emap svg { position:absolute; inset:0; width:100%; height:100%; overflow:visible; }
.emap .region { fill:#ff8a0022; stroke:#ff6a00; stroke-width:2.5; vector-effect:non-scaling-stroke; }
.emap .region.matched { stroke-dasharray:6 4; }
.emap a:hover .region { fill:#ff8a0055; }
.emap text { fill:#fff; stroke:#000; stroke-width:3; paint-order:stroke; font-weight:700;
  font-family:system-ui,sans-serif; vector-effect:non-scaling-stroke; }
.images .from { font-size:.75rem; color:var(--muted); overflow-wrap:anywhere; }
.step:target { outline:2px solid var(--accent); }
"""


def looked_at(result: AgentResult) -> dict[str, list[tuple[int, int, Source]]]:
    """input name -> [(step number, image number, source)] in step order."""
    regions: dict[str, list] = {}
    for number, step in enumerate(result.steps, 1):
        for j, image in enumerate(step.images, 1):
            if image.source is not None:
                regions.setdefault(image.source.input, []).append((number, j, image.source))
    return regions


def source_line(image: Image) -> str:
    """The caption line of a step image that came from an input ('' for the others)."""
    if image.source is None:
        return ""
    return f'<div class="from">from {escape(image.source.describe())}</div>'


def _region(number: int, j: int, source: Source, full: tuple[int, int]) -> str:
    x0, y0, x1, y1 = source.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # SVG turns clockwise for positive angles (y points down); ours are counter-clockwise.
    turn = f' transform="rotate({-source.angle:g} {cx:g} {cy:g})"' if source.angle else ""
    size = max(12.0, max(full) / 28)
    cls = "region matched" if source.how == "matched" else "region"
    tip = f"step {number} image {j}: {source.describe()}"
    return (
        f'<a href="#step-{number}"><title>{escape(tip)}</title>'
        f'<rect class="{cls}" x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}"{turn}/>'
        f'<text x="{x0 + size * 0.25:g}" y="{y0 + size:g}" font-size="{size:g}"{turn}>{number}</text></a>'
    )


def drawn(result: AgentResult) -> set[str]:
    """The inputs the map draws (with their regions): the trace shows them once, there."""
    names = {im.label for im in result.inputs}
    return {name for name in looked_at(result) if name in names and name in result.input_sizes}


def evidence_map(result: AgentResult) -> str:
    """The "where the model looked" card, or '' when no shown image came from an input."""
    regions = looked_at(result)
    if not regions:
        return ""
    parts = ['<section class="card evidence">\n<h2>Where the model looked</h2>',
             '<p class="meta">Every image the code showed the model, drawn where it came from in the input and '
             'numbered by step (dashed: found by matching, not followed through the code). Click one to go to its step.</p>']
    by_name = {im.label: im for im in result.inputs}
    for name, found in regions.items():
        picture = by_name.get(name)
        full = result.input_sizes.get(name)
        if picture is None or full is None:
            parts.append(f'<div class="label">{escape(name)}</div><div class="meta">'
                         + ", ".join(f"step {n}: {escape(s.describe())}" for n, _, s in found) + "</div>")
            continue
        src = f"data:{picture.mime_type};base64,{base64.b64encode(picture.data).decode('ascii')}"
        w, h = full
        parts.append(
            f'<div class="label">{escape(name)} · {w}×{h}</div>'
            f'<div class="emap"><img src="{escape(src)}" alt="{escape(name)}" width="{picture.width}" '
            f'height="{picture.height}"><svg viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
            f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="regions of {escape(name)}">'
            + "".join(_region(n, j, s, full) for n, j, s in found)
            + "</svg></div>"
        )
    return "\n".join(parts) + "\n</section>"
