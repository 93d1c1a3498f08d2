"""Running every (task, mode) pair: a bounded thread pool, a record per result, traces.

``play`` is one episode wherever it runs (a thread here, a Ray worker in
``bench.on_ray``); ``Collector`` is the driver that alone writes results.

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
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import InputError, SandboxUnavailable
from ..sandboxing.docker_engine import settings
from ..sandboxing.executors import resolve_kind
from ..trace import Grading, render_trace, write_trace_html
from ..values import LOCAL_MODES, BenchMode, Outcome, StopReason
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


def where_it_ran(sandbox: str | None, node_id: str | None = None, docker_host: str | None = None) -> dict:
    """The ``node`` of a record: the Ray node id (None in a local run), the host, the sandbox kind
    and, for Docker, the engine's address."""
    kind = resolve_kind(sandbox, docker_host) if sandbox else None
    engine = settings(docker_host)[1] if kind == "docker" else None
    return {"id": node_id, "hostname": socket.gethostname(), "sandbox": kind, "docker_engine": engine}


def play(runner: ModeRunner, task: Task, mode: str, *, index: int | None, suite: str, model: str,
         sandbox: str | None, traces: bool, node: dict | None = None) -> tuple[dict, str | None]:
    """One (task, mode): its record and, for the local modes, its rendered trace.

    The trace comes back as text, not a file, so an episode played on another
    machine is written where the driver keeps the results.
    """
    started = time.perf_counter()
    try:
        episode = runner.run(mode, task)
    except SandboxUnavailable:
        raise
    except Exception as exc:  # a harness bug or an unexpected failure: a result, not a crash
        episode = Episode(stop_reason=StopReason.HARNESS_ERROR, error=f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - started
    html = None
    if traces and mode in LOCAL_MODES and episode.result is not None:
        try:
            grading = Grading(task.id, mode, task.expected_text(), task.grade(episode.answer),
                              blind=mode == BenchMode.LOCAL_BLIND)
            html = render_trace(episode.result, grading)
        except Exception as exc:  # the trace is a convenience: the result still counts
            print(f"agentic-vision bench: no trace for {task.id} ({mode}): {exc}", file=sys.stderr)
    record = make_record(task, mode, episode, model=model, sandbox=sandbox, suite=suite, latency_s=latency,
                         trace=None, index=index)
    record["node"] = node or where_it_ran(sandbox if mode in LOCAL_MODES else None, docker_host=runner.docker_host)
    return record, html


class Collector:
    """The driver's side of a run: appends each finished record (and writes its trace) exactly once.

    ``on_record(record, done, total)`` hears of each pair as it finishes (the CLI's counter).
    """

    def __init__(self, store: ResultsFile, out_dir: Path, records: list[dict], total: int,
                 on_record: Callable[[dict, int, int], None] | None) -> None:
        self.store, self.trace_dir, self.records = store, Path(out_dir) / "traces", records
        self.total, self.on_record, self.done = total, on_record, 0

    def add(self, record: dict, html: str | None) -> None:
        if html is not None:
            name = f"{safe_name(record['task_id'])}.{record['mode']}.html"
            try:
                write_trace_html(html, self.trace_dir / name)
                record["trace"] = f"traces/{name}"
            except OSError as exc:
                print(f"agentic-vision bench: no trace for {record['task_id']} ({record['mode']}): {exc}",
                      file=sys.stderr)
        self.store.append(record)
        self.records.append(record)
        self.done += 1
        if self.on_record is not None:
            self.on_record(record, self.done, self.total)


def pending_pairs(tasks: list[Task], modes: list[str], done) -> list[tuple[Task, str]]:
    return [(task, mode) for task in tasks for mode in modes if (task.id, mode) not in done]


def run_pairs(tasks: list[Task], modes: list[str], runner: ModeRunner, out_dir: Path, *, resume: bool = False,
              concurrency: int = 1, suite: str = "", model: str = "", sandbox: str | None = None,
              traces: bool = True, on_record: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    """Runs every (task, mode) pair not yet in ``out_dir/results.jsonl`` on a thread pool; returns all records."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ResultsFile(out_dir / RESULTS_NAME, resume=resume) as store:
        records = list(store.previous.records)
        pending = pending_pairs(tasks, modes, store.done())
        position = {task.id: i for i, task in enumerate(tasks)}
        collector = Collector(store, out_dir, records, len(pending), on_record)

        def one(task: Task, mode: str) -> tuple[dict, str | None]:
            return play(runner, task, mode, index=position[task.id], suite=suite, model=model, sandbox=sandbox,
                        traces=traces)

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
                    collector.add(*future.result())  # SandboxUnavailable propagates from here
                refill()
        except BaseException:
            # Stop what has not started; keep what is running and finishes (a second Ctrl-C abandons it).
            pool.shutdown(wait=False, cancel_futures=True)
            for future in running:
                try:
                    collector.add(*future.result())
                except BaseException:
                    continue
            raise
        pool.shutdown(wait=True)
    return records
