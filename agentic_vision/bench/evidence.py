"""Did an episode look at the evidence?  From result records alone.

A task's ``evidence_boxes`` say where its answer is.  An evidence box counts as
**looked at** when one region the episode's code showed the model (a step
image's ``source``, see agentic_vision/provenance.py) contains at least
``COVER`` (50%) of the box's area; an episode looked at the evidence when
every evidence box of its task was looked at.  Turned regions count with
their turn.  Episodes without sources (direct and hosted modes, which show no
code's images from our sandbox) and tasks without evidence boxes are not
counted; in ``local-blind`` the regions are those its code made, which the
model never saw.  A right answer from an episode that never looked is
flagged: the model answered from its first glance, whatever its code did.
"""

from __future__ import annotations

import math

from ..values import LOCAL_MODES

COVER = 0.5
GRID = 24  # points per side sampled in an evidence box


def regions(record: dict) -> list[dict]:
    return [image["source"] for step in record.get("steps") or [] for image in step.get("images") or []
            if isinstance(image, dict) and isinstance(image.get("source"), dict)]


def _inside(x: float, y: float, region: dict) -> bool:
    x0, y0, x1, y1 = region["box"]
    angle = float(region.get("angle") or 0)
    if angle:
        # Into the box's own frame: undo its counter-clockwise turn (y points down).
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        t = math.radians(angle)
        dx, dy = x - cx, y - cy
        x, y = cx + dx * math.cos(t) - dy * math.sin(t), cy + dx * math.sin(t) + dy * math.cos(t)
    return x0 <= x <= x1 and y0 <= y <= y1


def covered_share(box: list, region: dict) -> float:
    """Share of ``box``'s area inside ``region`` (sampled on a GRID x GRID lattice)."""
    x0, y0, x1, y1 = box
    hits = 0
    for i in range(GRID):
        for j in range(GRID):
            x = x0 + (i + 0.5) * (x1 - x0) / GRID
            y = y0 + (j + 0.5) * (y1 - y0) / GRID
            hits += _inside(x, y, region)
    return hits / (GRID * GRID)


def looked_at_evidence(record: dict) -> bool | None:
    """True/False for an episode of a task with evidence boxes; None when it cannot be judged."""
    evidence = (record.get("task") or {}).get("evidence_boxes") or []
    if not evidence or record.get("mode") not in LOCAL_MODES:
        return None
    shown = regions(record)
    return all(any(r.get("input") == e["image"] and covered_share(e["box"], r) >= COVER for r in shown)
               for e in evidence)
