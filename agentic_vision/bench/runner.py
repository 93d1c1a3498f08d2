"""Running every (task, mode) pair: a bounded thread pool, a record per result, traces.

Rate limits: the SDK retries 429 and 5xx with exponential backoff (see
``models.gemini.make_client``); the pool keeps at most ``concurrency``
episodes in flight.  A sandbox that cannot start stops the run (nothing
useful could follow); any other failure is a result, recorded with its
reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import InputError, SandboxUnavailable
from ..trace import write_trace
from ..values import LOCAL_MODES, Outcome, StopReason
from .modes import Episode, ModeRunner
from .results import RECORD_VERSION, RESULTS_NAME, ResultsFile
from .tasks import Task

TEXT_LIMIT = 4000  # characters of code output / thoughts kept per record


def _cut(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters]"


def safe_name(task_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", task_id).strip("._") or "task"
    if name != task_id:
        name += "-" + hashlib.sha1(task_id.encode()).hexdigest()[:6]
    return name


def make_record(task: Task, mode: str, episode: Episode, *, model: str, sandbox: str | None, suite: str,
                latency_s: float, trace: str | None, index: int | None = None) -> dict:
    steps = [{**s, "output": _cut(s.get("output", ""))} for s in episode.steps]
    return {
        "v": RECORD_VERSION,
        "task_id": task.id,
        "mode": mode,
        "task_index": index,  # the task's place in the suite, so reports list tasks in suite order
        "suite": suite,
        "model": model,
        "sandbox": sandbox if mode in LOCAL_MODES else None,
        "task": task.spec(),
        "answer": episode.answer,
        "correct": task.grade(episode.answer),
        "stop_reason": episode.stop_reason,
        "error": episode.error,
        "thoughts": _cut(episode.thoughts),
        "steps": steps,
        "model_calls": episode.model_calls,
        "code_runs": len(steps),
        "failed_code_runs": sum(1 for s in steps if s.get("outcome") != Outcome.OK),
        "usage": episode.usage.as_dict(),
        "latency_s": round(latency_s, 3),
        "timings": episode.timings,
        "trace": trace,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_meta(out_dir: Path, meta: dict, resume: bool) -> None:
    """``run.json``: what the run was; a resumed run must use the same model."""
    path = out_dir / "run.json"
    if resume and path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        if old.get("model") and old["model"] != meta["model"]:
            raise InputError(f"{out_dir} holds results of model {old['model']!r}, not {meta['model']!r}: "
                             "resume with the same --model or choose another --out")
        meta = {**old, **meta, "started_at": old.get("started_at", meta.get("started_at")),
                "resumed_at": meta.get("started_at")}
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def run_pairs(tasks: list[Task], modes: list[str], runner: ModeRunner, out_dir: Path, *, resume: bool = False,
              concurrency: int = 1, suite: str = "", model: str = "", sandbox: str | None = None,
              traces: bool = True, on_record: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    """Runs every (task, mode) pair not yet in ``out_dir/results.jsonl``; returns all records.
    ``on_record(record, done, total)`` hears of each pair as it finishes (the CLI's counter)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trace_dir = out_dir / "traces"
    with ResultsFile(out_dir / RESULTS_NAME, resume=resume) as store:
        done = store.done()
        records = list(store.previous.records)
        pending = [(task, mode) for task in tasks for mode in modes if (task.id, mode) not in done]
        position = {task.id: i for i, task in enumerate(tasks)}

        def one(task: Task, mode: str) -> dict:
            started = time.perf_counter()
            try:
                episode = runner.run(mode, task)
            except SandboxUnavailable:
                raise
            except Exception as exc:  # a harness bug or an unexpected failure: a result, not a crash
                episode = Episode(stop_reason=StopReason.HARNESS_ERROR, error=f"{type(exc).__name__}: {exc}")
            latency = time.perf_counter() - started
            trace = None
            if traces and mode in LOCAL_MODES and episode.result is not None:
                name = f"{safe_name(task.id)}.{mode}.html"
                try:
                    trace_dir.mkdir(exist_ok=True)
                    write_trace(episode.result, trace_dir / name)
                    trace = f"traces/{name}"
                except Exception as exc:  # the trace is a convenience: the result still counts
                    print(f"agentic-vision bench: no trace for {task.id} ({mode}): {exc}", file=sys.stderr)
            return make_record(task, mode, episode, model=model, sandbox=sandbox, suite=suite,
                               latency_s=latency, trace=trace, index=position[task.id])

        pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="bench")
        try:
            queue = iter(pending)
            running = set()

            def refill() -> None:
                # Submit lazily: at most 2 x concurrency pairs queued, so a fatal error stops soon.
                while len(running) < 2 * max(1, concurrency):
                    item = next(queue, None)
                    if item is None:
                        return
                    running.add(pool.submit(one, *item))

            refill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.discard(future)
                    record = future.result()  # SandboxUnavailable propagates from here
                    store.append(record)
                    records.append(record)
                    if on_record is not None:
                        on_record(record, len(records) - len(store.previous.records), len(pending))
                refill()
        except BaseException:
            # Stop what has not started; keep what is running and finishes (a second Ctrl-C abandons it).
            pool.shutdown(wait=False, cancel_futures=True)
            for future in running:
                try:
                    record = future.result()
                except BaseException:
                    continue
                store.append(record)
                records.append(record)
            raise
        pool.shutdown(wait=True)
    return records
