"""Per-mode metrics computed from result records alone (no re-run needed).

Correctness is re-graded from each record's task spec and answer, so a
better matcher improves old runs too.  A run that stopped without an answer
counts as wrong.  The paired comparison with ``direct`` uses the tasks both
modes finished: ``b`` = direct right and this mode wrong, ``c`` = direct
wrong and this mode right, with the exact McNemar p-value of (b, c).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .evidence import looked_at_evidence
from .prices import cost, price_for
from .stats import mcnemar_exact, percentile, wilson
from .tasks import grade_spec
from ..values import BENCH_MODES as MODES, BenchMode, StopReason

TOKEN_KEYS = ("prompt_tokens", "output_tokens", "thoughts_tokens", "tool_use_prompt_tokens")


def graded(record: dict) -> bool:
    try:
        return grade_spec(record["task"], record.get("answer"))
    except (KeyError, ValueError, TypeError):
        return bool(record.get("correct"))


@dataclass
class ModeSummary:
    mode: str
    n: int = 0
    correct: int = 0
    accuracy: float = 0.0
    ci: tuple[float, float] = (0.0, 1.0)
    b: int = 0  # direct right, this mode wrong
    c: int = 0  # direct wrong, this mode right
    p_value: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    model_calls: float = 0.0  # per task
    code_runs: float = 0.0  # per task
    failed_code_runs: float = 0.0  # per task
    failed_runs: int = 0  # stopped without an answer
    tokens: dict = field(default_factory=lambda: dict.fromkeys(TOKEN_KEYS, 0))
    cost: float | None = None
    priced: bool = True
    failures: Counter = field(default_factory=Counter)  # stop_reason -> count
    messages: Counter = field(default_factory=Counter)  # error message -> count
    evidence_n: int = 0  # episodes of tasks with evidence boxes, in modes that say where images came from
    evidence_looked: int = 0  # of those, the ones whose shown regions covered the evidence (bench/evidence.py)
    right_unlooked: list = field(default_factory=list)  # task ids answered right without looking


def summarise(records: list[dict], prices: dict, modes: list[str] | None = None) -> dict[str, ModeSummary]:
    by_mode: dict[str, list[dict]] = {}
    for record in records:
        by_mode.setdefault(record["mode"], []).append(record)
    order = [m for m in (modes or MODES) if m in by_mode] + sorted(m for m in by_mode if m not in (modes or MODES))
    direct = {r["task_id"]: graded(r) for r in by_mode.get(BenchMode.DIRECT, [])}
    out = {}
    for mode in order:
        rows = by_mode[mode]
        s = ModeSummary(mode, n=len(rows))
        marks = {r["task_id"]: graded(r) for r in rows}
        s.correct = sum(marks.values())
        s.accuracy = s.correct / s.n if s.n else 0.0
        s.ci = wilson(s.correct, s.n)
        if mode != BenchMode.DIRECT and direct:
            shared = [t for t in marks if t in direct]
            s.b = sum(1 for t in shared if direct[t] and not marks[t])
            s.c = sum(1 for t in shared if not direct[t] and marks[t])
            s.p_value = mcnemar_exact(s.b, s.c)
        latencies = [float(r.get("latency_s") or 0) for r in rows]
        s.latency_p50, s.latency_p95 = percentile(latencies, 50), percentile(latencies, 95)
        s.model_calls = sum(r.get("model_calls", 0) for r in rows) / s.n
        s.code_runs = sum(r.get("code_runs", 0) for r in rows) / s.n
        s.failed_code_runs = sum(r.get("failed_code_runs", 0) for r in rows) / s.n
        total_cost = 0.0
        for r in rows:
            usage = r.get("usage") or {}
            for key in TOKEN_KEYS:
                s.tokens[key] += int(usage.get(key, 0) or 0)
            c = cost(usage, price_for(r.get("model", ""), prices))
            if c is None:
                s.priced = False
            else:
                total_cost += c
            if r.get("stop_reason") != StopReason.ANSWERED:
                s.failed_runs += 1
                s.failures[r.get("stop_reason") or "unknown"] += 1
                if r.get("error"):
                    s.messages[str(r["error"]).strip().splitlines()[0][:160]] += 1
            looked = looked_at_evidence(r)
            if looked is not None:
                s.evidence_n += 1
                s.evidence_looked += looked
                if not looked and marks[r["task_id"]]:
                    s.right_unlooked.append(r["task_id"])
        s.cost = total_cost if s.priced else None
        out[mode] = s
    return out
