"""``DIR/report.html``: the report as one self-contained page (next to report.md).

The chart is inside as a ``data:`` URI, the CSS inline, no script and nothing
fetched from elsewhere; links go to the traces beside it.  Everything from
records (task ids, answers, messages) is escaped.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from .evidence import looked_at_evidence
from .matching import what_was_read
from .metrics import ModeSummary, graded
from .report import _expected, _in_suite_order, _money, _p, _pct, _seconds
from ..values import LOCAL_MODES, BenchMode

HTML_NAME = "report.html"

CSS = """
:root { --bg:#fbfbfa; --card:#fff; --fg:#1d1f23; --muted:#6a6f78; --line:#e3e4e8; --ok:#1f8a4c; --bad:#c92a2a;
  --warn:#a35f00; --accent:#3b5bdb; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--fg); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
main { max-width:1100px; margin:0 auto; padding:24px 20px 60px; }
h1 { font-size:1.35rem; margin:0 0 6px; } h2 { font-size:1.05rem; margin:28px 0 10px; }
.meta, .note { color:var(--muted); font-size:.85rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 18px; margin:14px 0; }
table { border-collapse:collapse; width:100%; font-size:.88rem; font-variant-numeric:tabular-nums; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
td.n, th.n { text-align:right; }
.ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); font-weight:600; }
.bar { display:inline-block; height:.7em; background:#ff8a00; border-radius:3px; vertical-align:middle; margin-right:6px; }
.chart { max-width:100%; height:auto; display:block; }
a { color:var(--accent); }
"""


def _row(cells, numeric=()) -> str:
    return "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                            for i, c in enumerate(cells)) + "</tr>"


def _head(names, numeric=()) -> str:
    return "<tr>" + "".join(f'<th class="n">{escape(n)}</th>' if i in numeric else f"<th>{escape(n)}</th>"
                            for i, n in enumerate(names)) + "</tr>"


def render_html(records: list[dict], meta: dict, summaries: dict[str, ModeSummary], chart: Path | None,
                notes: list[str] | None = None) -> str:
    title = f"Benchmark: {meta.get('suite', '?')} on {meta.get('model', '?')}"
    task_ids = _in_suite_order(records)
    parts = [f"<h1>{escape(title)}</h1>",
             f'<div class="meta">{len(task_ids)} tasks · modes: {escape(", ".join(summaries) or "none")}'
             + (f" · seed {escape(str(meta['seed']))}" if meta.get("seed") is not None else "")
             + (f" · started {escape(str(meta['started_at']))}" if meta.get("started_at") else "") + "</div>"]
    parts += [f'<p class="note">Note: {escape(n)}</p>' for n in notes or []]
    if chart is not None and chart.is_file():
        data = base64.b64encode(chart.read_bytes()).decode("ascii")
        parts.append(f'<div class="card"><img class="chart" src="data:image/png;base64,{data}" '
                     'alt="Accuracy by mode, relative to direct"></div>')

    numeric = (1, 2, 3, 5, 6)
    rows = [_head(["mode", "tasks", "correct", "accuracy", "95% CI (Wilson)", "vs direct: b / c", "McNemar p"], numeric)]
    for s in summaries.values():
        paired = f"{s.b} / {s.c}" if s.mode != BenchMode.DIRECT and s.p_value is not None else "–"
        rows.append(_row([escape(s.mode), s.n, s.correct, _pct(s.accuracy), f"{_pct(s.ci[0])} – {_pct(s.ci[1])}",
                          paired, _p(s.p_value) if s.mode != BenchMode.DIRECT else "–"], numeric))
    parts.append('<h2>Accuracy</h2><div class="card"><table>' + "".join(rows) + "</table></div>")

    judged = [s for s in summaries.values() if s.evidence_n]
    if judged:
        rows = [_head(["mode", "episodes with evidence boxes", "looked at the evidence", "share",
                       "right answers that never looked"], (1, 2, 4))]
        for s in judged:
            share = s.evidence_looked / s.evidence_n
            rows.append(_row([escape(s.mode), s.evidence_n, s.evidence_looked,
                              f'<span class="bar" style="width:{round(80 * share)}px"></span>{_pct(share)}',
                              len(s.right_unlooked)], (1, 2, 4)))
        parts.append('<h2>Where the model looked</h2><div class="card"><table>' + "".join(rows) + "</table>"
                     '<p class="note">Looked at the evidence: for every evidence box of the task, one region the '
                     "code showed the model contains at least half of the box's area.</p></div>")

    rows = [_head(["mode", "latency p50", "latency p95", "model calls / task", "code runs / task",
                   "runs without answer", "est. cost"], (1, 2, 3, 4, 5, 6))]
    for s in summaries.values():
        rows.append(_row([escape(s.mode), _seconds(s.latency_p50), _seconds(s.latency_p95), f"{s.model_calls:.2f}",
                          f"{s.code_runs:.2f}", s.failed_runs, _money(s.cost)], (1, 2, 3, 4, 5, 6)))
    parts.append('<h2>Cost and effort</h2><div class="card"><table>' + "".join(rows) + "</table></div>")

    by_pair = {(r["task_id"], r["mode"]): r for r in records}
    rows = [_head(["task", "expected", *summaries])]
    for task_id in task_ids:
        spec = next(r["task"] for r in records if r["task_id"] == task_id)
        cells = [f"<code>{escape(task_id)}</code>", escape(_expected(spec))]
        for mode in summaries:
            r = by_pair.get((task_id, mode))
            if r is None:
                cells.append("–")
                continue
            right = graded(r)
            spec_r = r.get("task") or {}
            read = what_was_read(r.get("answer"), spec_r.get("match", "exact"), options=spec_r.get("options"))
            shown = read if r.get("answer") else f"({r.get('stop_reason')})"
            cell = f'<span class="{"ok" if right else "bad"}">{"✓" if right else "✗"}</span> {escape(str(shown)[:60])}'
            if mode in LOCAL_MODES and right and looked_at_evidence(r) is False:
                cell += ' <span class="warn" title="right, but no shown region covered the evidence">⚠ never looked</span>'
            if mode in LOCAL_MODES and r.get("trace") and ":" not in str(r["trace"]):  # relative links only
                cell += f' <a href="{escape(str(r["trace"]))}">trace</a>'
            cells.append(cell)
        rows.append(_row(cells))
    parts.append('<h2>Per task</h2><div class="card"><table>' + "".join(rows) + "</table></div>")
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(parts) + "\n</main>\n</body>\n</html>\n")
