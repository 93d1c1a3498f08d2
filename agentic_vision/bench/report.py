"""``DIR/report.md``, ``DIR/report.html`` (report_html.py) and ``DIR/accuracy.png`` from the result records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .evidence import looked_at_evidence
from .matching import LETTERS, expected_choice, what_was_read
from .metrics import ModeSummary, graded, summarise
from ..values import BENCH_MODES as MODES, LOCAL_MODES, BenchMode

CHART_NAME = "accuracy.png"
REPORT_NAME = "report.md"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _seconds(x: float | None) -> str:
    return "–" if x is None else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.3f}" if p >= 0.001 else "<0.001"


def _money(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


def _cell(text: str | None, limit: int = 60) -> str:
    text = " ".join(str(text or "").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|") or "–"


def accuracy_chart(summaries: dict[str, ModeSummary], path: Path, title: str) -> Path:
    """Accuracy by mode normalised to direct = 1.0 (absolute accuracy when direct is absent or 0)."""
    # matplotlib is heavy: only when a chart is drawn.  No pyplot: no global backend, safe beside threads.
    from matplotlib.figure import Figure

    modes = list(summaries)
    base = summaries[BenchMode.DIRECT].accuracy if BenchMode.DIRECT in summaries else 0.0
    relative = base > 0
    scale = base if relative else 1.0
    heights = [summaries[m].accuracy / scale for m in modes]
    lows = [max(0.0, h - summaries[m].ci[0] / scale) for m, h in zip(modes, heights)]
    highs = [max(0.0, summaries[m].ci[1] / scale - h) for m, h in zip(modes, heights)]
    colours = {BenchMode.DIRECT: "#9aa0a6", BenchMode.HOSTED: "#4285f4", BenchMode.LOCAL: "#34a853", BenchMode.LOCAL_BLIND: "#a8d5b5"}
    fig = Figure(figsize=(7, 4.2), dpi=150)
    ax = fig.add_subplot()
    bars = ax.bar(modes, heights, color=[colours.get(m, "#777777") for m in modes], width=0.6,
                  yerr=[lows, highs], capsize=6, error_kw={"elinewidth": 1, "ecolor": "#333333"})
    for bar, mode, h, up in zip(bars, modes, heights, highs):
        s = summaries[mode]
        label = f"{h:.2f}×  ({_pct(s.accuracy)})" if relative else _pct(s.accuracy)
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, h + up), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8)
    if relative:
        ax.axhline(1.0, color="#555555", linestyle="--", linewidth=1)
        ax.set_ylabel("accuracy relative to direct (= 1.0)")
    else:
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.05)
    top = max([h + e for h, e in zip(heights, highs)] + [1.0])
    ax.set_ylim(0, top * 1.15)
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    note = ("whiskers: each mode's 95% Wilson interval divided by direct's accuracy" if relative
            else "whiskers: 95% Wilson intervals")
    fig.text(0.99, 0.01, note, ha="right", va="bottom", fontsize=7, color="#666666")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    return path


def render_report(records: list[dict], meta: dict, prices: dict, price_source: str,
                  notes: list[str] | None = None, chart: str | None = CHART_NAME) -> str:
    modes = [m for m in meta.get("modes", MODES) if any(r["mode"] == m for r in records)]
    summaries = summarise(records, prices, modes)
    task_ids = _in_suite_order(records)
    lines = [f"# Benchmark: {meta.get('suite', '?')} on {meta.get('model', '?')}", ""]
    facts = [f"{len(task_ids)} tasks", f"modes: {', '.join(summaries) or 'none'}"]
    if meta.get("sandbox"):
        where = meta["sandbox"]
        if meta.get("docker_engine"):  # the run used Docker ("auto" too)
            where = f"docker at {meta['docker_engine']}" + ("" if where == "docker" else f" ({where})")
        facts.append(f"sandbox: {where}")
    if meta.get("libraries"):  # not the hosted environment alone: say so beside the figures
        facts.append(f"extra libraries: {', '.join(meta['libraries'])}")
    if meta.get("seed") is not None:
        facts.append(f"seed: {meta['seed']}")
    if meta.get("started_at"):
        facts.append(f"started {meta['started_at']}")
    lines += ["; ".join(facts) + ".", ""]
    for note in notes or []:
        lines.append(f"- Note: {note}")
    if notes:
        lines.append("")
    if chart:
        lines += [f"![Accuracy by mode, relative to direct]({chart})", ""]

    lines += ["## Accuracy", "",
              "| mode | tasks | correct | accuracy | 95% CI (Wilson) | vs direct: b / c | McNemar p |",
              "|---|---:|---:|---:|---|---:|---:|"]
    for s in summaries.values():
        paired = f"{s.b} / {s.c}" if s.mode != BenchMode.DIRECT and s.p_value is not None else "–"
        lines.append(f"| {s.mode} | {s.n} | {s.correct} | {_pct(s.accuracy)} | {_pct(s.ci[0])} – {_pct(s.ci[1])} "
                     f"| {paired} | {_p(s.p_value) if s.mode != 'direct' else '–'} |")
    lines += ["", "b: tasks direct got right and this mode wrong; c: the reverse (on the tasks both modes "
              "finished). McNemar p: exact two-sided test that b and c differ only by chance.", ""]

    lines += ["## Cost and effort", "",
              "| mode | latency p50 | latency p95 | model calls / task | code runs / task | failed code runs / task "
              "| runs without answer | prompt tokens | output tokens | thinking tokens | tool-use tokens | est. cost |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries.values():
        t = s.tokens
        lines.append(f"| {s.mode} | {_seconds(s.latency_p50)} | {_seconds(s.latency_p95)} | {s.model_calls:.2f} "
                     f"| {s.code_runs:.2f} | {s.failed_code_runs:.2f} | {s.failed_runs} | {t['prompt_tokens']:,} "
                     f"| {t['output_tokens']:,} | {t['thoughts_tokens']:,} | {t['tool_use_prompt_tokens']:,} "
                     f"| {_money(s.cost)} |")
    lines += ["", f"Cost: {price_source}; prompt and tool-use tokens at the input price, output and thinking "
              "tokens at the output price. Latency: wall time of one task in one mode, as the harness measured it.",
              ""]

    lines += evidence_section(summaries)
    lines += where_it_ran(records)

    failing = [s for s in summaries.values() if s.failures]
    lines += ["## Runs without an answer", ""]
    if not failing:
        lines += ["None: every run ended with an answer.", ""]
    for s in failing:
        reasons = ", ".join(f"{reason} × {count}" for reason, count in _by_count(s.failures))
        lines.append(f"- **{s.mode}**: {reasons}")
        for message, count in _by_count(s.messages)[:5]:
            lines.append(f"  - {count} × {_cell(message, 160)}")
    if failing:
        lines.append("")

    by_pair = {(r["task_id"], r["mode"]): r for r in records}
    lines += ["## Per task", "", "| task | expected | " + " | ".join(summaries) + " |",
              "|---|---|" + "---|" * len(summaries)]
    for task_id in task_ids:
        spec = next(r["task"] for r in records if r["task_id"] == task_id)
        cells = []
        for mode in summaries:
            r = by_pair.get((task_id, mode))
            if r is None:
                cells.append("–")
                continue
            mark = "✓" if graded(r) else "✗"
            spec = r.get("task") or {}
            read = what_was_read(r.get("answer"), spec.get("match", "exact"), options=spec.get("options"))
            shown = read if r.get("answer") else f"({r.get('stop_reason')})"
            cell = f"{mark} {_cell(shown, 40)}"
            if mode in LOCAL_MODES and graded(r) and looked_at_evidence(r) is False:
                cell += " ⚠ never looked at the evidence"
            if mode in LOCAL_MODES and r.get("trace"):
                cell += f" [trace]({r['trace']})"
            cells.append(cell)
        lines.append(f"| {_cell(task_id, 40)} | {_cell(_expected(spec), 40)} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def evidence_section(summaries: dict[str, ModeSummary]) -> list[str]:
    """Whether the regions each mode's code showed the model covered the tasks' evidence boxes."""
    judged = [s for s in summaries.values() if s.evidence_n]
    if not judged:
        return []
    lines = ["## Where the model looked", "",
             "| mode | episodes with evidence boxes | looked at the evidence | share | right answers that never looked |",
             "|---|---:|---:|---:|---:|"]
    for s in judged:
        lines.append(f"| {s.mode} | {s.evidence_n} | {s.evidence_looked} | {_pct(s.evidence_looked / s.evidence_n)} "
                     f"| {len(s.right_unlooked)} |")
    lines += ["", "Looked at the evidence: for every evidence box of the task, one region the code showed the model "
              "contains at least half of the box's area. Right answers that never looked were answered from the "
              "first glance, whatever the code did.", ""]
    for s in judged:
        if s.right_unlooked:
            lines.append(f"- **{s.mode}**, right without looking at the evidence: "
                         + ", ".join(_cell(t, 40) for t in sorted(s.right_unlooked)))
    if any(s.right_unlooked for s in judged):
        lines.append("")
    return lines


def where_it_ran(records: list[dict]) -> list[str]:
    """Episodes per node and per minute (a record's start is its finish less its latency)."""
    by_node: dict[tuple, list[dict]] = {}
    for r in records:
        node = r.get("node") or {}
        by_node.setdefault((node.get("hostname") or "?", node.get("id") or ""), []).append(r)
    if not by_node:
        return []
    lines = ["## Where episodes ran", "", "| node | sandbox | episodes | episodes / min |", "|---|---|---:|---:|"]
    for (host, node_id), rs in sorted(by_node.items(), key=lambda item: (-len(item[1]), item[0])):
        kinds = sorted({(r.get("node") or {}).get("sandbox") for r in rs} - {None}) or ["–"]
        name = f"{host} ({node_id[:8]})" if node_id else host
        lines.append(f"| {_cell(name)} | {', '.join(kinds)} | {len(rs)} | {_rate(rs)} |")
    lines += ["", f"All nodes: {len(records)} episodes, {_rate(records)} per minute over the time they ran.", ""]
    return lines


def _rate(records: list[dict]) -> str:
    spans = []
    for r in records:
        try:
            end = datetime.fromisoformat(r["finished_at"]).timestamp()
        except (KeyError, TypeError, ValueError):
            continue
        spans.append((end - float(r.get("latency_s") or 0), end))
    if not spans:
        return "–"
    minutes = (max(e for _, e in spans) - min(s for s, _ in spans)) / 60
    return f"{len(records) / minutes:.1f}" if minutes > 0 else "–"


def _in_suite_order(records: list[dict]) -> list[str]:
    """Task ids in suite order (records come in the order episodes finished)."""
    first: dict[str, tuple] = {}
    for n, r in enumerate(records):
        index = r.get("task_index")
        first.setdefault(r["task_id"], (index if isinstance(index, int) else float("inf"), n))
    return sorted(first, key=first.get)


def _by_count(counter) -> list[tuple[str, int]]:
    """Most frequent first, ties by name: the same report whatever order the episodes finished in."""
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _expected(spec: dict) -> str:
    if spec.get("match") == "choice" and spec.get("options"):
        try:
            i = expected_choice(str(spec["answer"]), spec["options"])
            return f"({LETTERS[i]}) {spec['options'][i]}"
        except ValueError:
            pass
    if spec.get("match") == "number" and spec.get("tolerance"):
        return f"{spec['answer']} ± {spec['tolerance']:g}"
    return str(spec.get("answer"))


def write_report(out_dir: Path, records: list[dict], meta: dict, prices: dict, price_source: str,
                 notes: list[str] | None = None) -> tuple[Path, Path | None]:
    out_dir = Path(out_dir)
    modes = [m for m in meta.get("modes", MODES) if any(r["mode"] == m for r in records)]
    chart_path = None
    if records:
        try:
            title = f"{meta.get('model', '')} on {meta.get('suite', '')}: accuracy by mode"
            chart_path = accuracy_chart(summarise(records, prices, modes), out_dir / CHART_NAME, title)
        except ImportError:
            notes = list(notes or []) + ["matplotlib is not installed: no accuracy.png"]
    text = render_report(records, meta, prices, price_source, notes, CHART_NAME if chart_path else None)
    report = out_dir / REPORT_NAME
    report.write_text(text, encoding="utf-8")
    from .report_html import HTML_NAME, render_html  # it builds on this module's helpers

    page = render_html(records, meta, summarise(records, prices, modes), chart_path, notes)
    (out_dir / HTML_NAME).write_text(page, encoding="utf-8")
    return report, chart_path
