"""``agentic-vision bench``: does code execution pay off on these images, and does our
local loop match Gemini's hosted one?

Registered in ``agentic_vision/cli.py`` as ``cli.add_command(bench_command)``; also
runnable alone as ``python -m agentic_vision.bench``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from ..bench.metrics import summarise
from ..bench.prices import load_prices
from ..bench.report import write_report
from ..bench.results import RESULTS_NAME, read_results
from ..bench.suite import load_suite
from ..errors import AgenticVisionError, InputError
from ..locking import Busy, exclusive
from ..models import check_model_name
from ..sandboxing.executors import check_docker_host, check_libraries
from ..sandboxing.extras import library_set
from .docker import docker_host_option, sandbox_option
from .libraries import libraries_option
from .exits import exit_status, fail, file_error
from ..bench.config import RayOptions
from .progress import BenchProgress
from .readiness import say_why_not_docker
from .verbosity import quiet as quiet_flag
from ..values import BENCH_MODES as MODES, LOCAL_MODES, BenchMode


LOCK_NAME = ".bench.lock"
PAIRED_LEGEND = ("b/c vs direct: tasks this mode got right and direct got wrong / the reverse; McNemar p: the "
                 "chance of a split at least that uneven if the two modes were equally good")


def parse_modes(text: str) -> list[str]:
    modes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item not in MODES:
            raise click.BadParameter(f"unknown mode {item!r} (choose from {', '.join(MODES)})", param_hint="--modes")
        if item not in modes:
            modes.append(item)
    if not modes:
        raise click.BadParameter("no modes given", param_hint="--modes")
    return modes


def summary_lines(records: list[dict], modes: list[str], prices: dict) -> list[str]:
    out = [f"{'mode':<12} {'tasks':>5} {'accuracy':>8}  {'95% CI':<15} {'b/c vs direct':>13} {'McNemar p':>9} "
           f"{'p50':>7} {'cost':>9}"]
    for s in summarise(records, prices, modes).values():
        ci = f"{100 * s.ci[0]:.1f}–{100 * s.ci[1]:.1f}%"
        paired = f"{s.b}/{s.c}" if s.mode != BenchMode.DIRECT and s.p_value is not None else "–"
        p = f"{s.p_value:.3f}" if s.mode != BenchMode.DIRECT and s.p_value is not None else "–"
        p50 = f"{s.latency_p50:.2f}s" if s.latency_p50 is not None else "–"
        cost = f"${s.cost:.4f}" if s.cost is not None else "n/a"
        out.append(f"{s.mode:<12} {s.n:>5} {100 * s.accuracy:>7.1f}%  {ci:<15} {paired:>13} {p:>9} {p50:>7} {cost:>9}")
    if any(row.split()[0] != BenchMode.DIRECT for row in out[1:]):  # a column of pairs to explain
        out.append(PAIRED_LEGEND)
    return out


@click.command("bench")
@click.option("--suite", default="builtin", show_default=True,
              help="builtin (builtin-checked, builtin-generated), a tasks .jsonl, an HR-Bench .tsv/.parquet, "
                   "or a V* Bench directory.")
@click.option("--modes", "modes_text", default="direct,hosted,local", show_default=True,
              help=f"Comma-separated, from: {', '.join(MODES)}.")
@click.option("--model", default="gemini-3-flash-preview", show_default=True,
              envvar="AGENTIC_VISION_MODEL", show_envvar=True,
              help="gemini-…, openai:NAME or ollama:NAME.")
@click.option("--base-url", default=None, help="Server for openai:/ollama: models (passed through).")
@sandbox_option("Where the local modes run code.")
@docker_host_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for results.jsonl, report.md, report.html, accuracy.png, traces/ and generated images.")
@click.option("--resume", is_flag=True, help="Continue a run in --out: skip the (task, mode) pairs already done.")
@click.option("--concurrency", type=click.IntRange(min=1, max=1024), default=None,
              help="Episodes in flight at once: threads (default 2), or with --ray Ray tasks (default: as many "
                   "as the cluster has room for).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run the episodes on a Ray cluster: auto (RAY_ADDRESS, else the cluster on this machine), "
                   "host:port or ray://host:10001. Needs the ray extra.")
@click.option("--ray-cpus", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --ray: CPUs each episode reserves on its node (bounds sandboxes per node).")
@click.option("--ray-resource", default=None, metavar="NAME",
              help="With --ray: a custom node resource each episode needs one unit of "
                   "(e.g. nodes started with --resources '{\"sandbox\": 4}').")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N tasks of the suite.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated tasks.")
@click.option("--prices", "prices_file", type=click.Path(dir_okay=False), default=None,
              help='JSON {"model-prefix": {"input": USD, "output": USD}} per million tokens, over the example table.')
@click.option("--thinking", default="default", show_default=True,
              help="Thinking level (default, off, minimal, low, medium, high): Gemini's thinking, "
                   "reasoning_effort for openai:/ollama: models.")
@click.option("--max-steps", type=click.IntRange(min=1), default=12, show_default=True, help="Local modes: code turns.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Local modes: seconds per code run.")
@click.option("--no-traces", is_flag=True, help="Do not write HTML traces of the local modes.")
@click.option("--report-only", is_flag=True, help="Rebuild report.md, report.html and accuracy.png from results.jsonl; run nothing.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option("--memory", is_flag=True, help="Give the local modes the user's remembered corrections "
              "(agentic-vision memory); off by default, so that a benchmark never learns from its own answers.")
@libraries_option
@click.option("--progress-every", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS",
              help="Off a terminal (CI, nohup): a progress line this often (done/total, rate, time left).")
def bench_command(suite, modes_text, model, base_url, sandbox, docker_host, out_dir, resume, concurrency,
                  ray_address, ray_cpus, ray_resource, limit, seed, prices_file, thinking, max_steps, timeout,
                  no_traces, report_only, quiet, memory, libraries, progress_every) -> None:
    """Run a suite in several modes (direct, hosted, local, local-blind) and write a report."""
    quiet = quiet_flag(quiet)
    ray = RayOptions(ray_address, ray_cpus, ray_resource) if ray_address else None
    try:
        _bench(suite, parse_modes(modes_text), model, base_url, sandbox, Path(out_dir), resume, concurrency, ray,
               limit, seed, prices_file, thinking, max_steps, timeout, no_traces, report_only, quiet, docker_host,
               progress_every=progress_every, memory=memory, libraries=libraries)
    except OSError as exc:  # e.g. --out cannot be written
        exc = file_error(exc)
        fail(str(exc), exit_status(exc))
    except AgenticVisionError as exc:  # standalone use (python -m, CliRunner) reports like the main CLI
        fail(str(exc), exit_status(exc))


def _bench(suite_name, modes, model_name, base_url, sandbox, out_dir, resume, concurrency, ray, limit, seed,
           prices_file, thinking, max_steps, timeout, no_traces, report_only, quiet, docker_host=None,
           progress_every=10.0, memory=False, libraries=()) -> None:
    check_docker_host(sandbox, docker_host, cli=True)
    libs = library_set(libraries)
    prices, price_source = load_prices(prices_file)
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    if report_only:
        loaded = read_results(out_dir / RESULTS_NAME)
        if not loaded.records:
            raise InputError(f"no results in {out_dir / RESULTS_NAME}")
        meta_path = out_dir / "run.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        meta["modes"] = _modes_present(loaded.records)
        report, chart = write_report(out_dir, loaded.records, meta, prices, price_source, meta.get("notes"))
        click.echo("\n".join(summary_lines(loaded.records, meta["modes"], prices)))
        click.echo(f"report: {report}")
        return

    out_dir.mkdir(parents=True, exist_ok=True)
    try:  # two runs into one --out would write over each other's files: the second is one line
        with exclusive(out_dir / LOCK_NAME):
            _run(suite_name, modes, model_name, base_url, sandbox, out_dir, resume, concurrency, ray, limit, seed,
                 prices, price_source, thinking, max_steps, timeout, no_traces, quiet, docker_host, say, memory, libs,
                 progress_every)
    except Busy as exc:
        raise InputError(f"another bench run (pid {exc.pid or '?'}) is writing to {out_dir}: wait for it to "
                         "finish, or choose another --out") from None


def _run(suite_name, modes, model_name, base_url, sandbox, out_dir, resume, concurrency, ray, limit, seed,
         prices, price_source, thinking, max_steps, timeout, no_traces, quiet, docker_host, say, memory,
         libs, progress_every) -> None:
    # The modes import google-genai (~1.5 s): not for every start of the command line.
    from ..bench.config import RunConfig, make_model, model_env
    from ..bench.modes import ModeRunner, available_modes
    from ..bench.on_ray import import_ray, run_pairs_on_ray
    from ..bench.runner import run_pairs, write_meta
    from ..sandboxing.executors import describe_sandbox, sandbox_in_use

    existing = out_dir / RESULTS_NAME
    if not resume and existing.is_file() and existing.stat().st_size:
        raise InputError(f"{existing} already holds results: pass --resume to continue that run, "
                         "or choose another --out")

    if ray is not None:
        import_ray()  # no Ray: one line before anything is loaded or asked
    loaded_suite = load_suite(suite_name, out_dir / "cache", seed=seed, limit=limit)
    for note in loaded_suite.notes:
        say(f"note: {note}")
    check_model_name(model_name, cli=True)  # what to write, in the command line's words
    model = make_model(model_name, base_url, thinking)
    modes, skipped = available_modes(model, modes)
    for note in skipped:
        say(f"note: {note}")
    if not modes:
        raise InputError("no mode left to run")
    if libs and ray is None and any(m in LOCAL_MODES for m in modes):
        check_libraries(sandbox, libs, docker_host)  # not set up or built: one line before the model is asked
    # No API key, no API: one line now, not one failure per task (on Ray the nodes reach the API).
    model.check_ready(reachable=ray is None)
    sandbox_kind = sandbox if any(m in LOCAL_MODES for m in modes) else None
    where, engine = sandbox, docker_host
    if sandbox_kind and ray is None:  # an engine that does not answer: one line now (on Ray the nodes reach it)
        kind, engine = sandbox_in_use(sandbox, docker_host, libs)
        where = describe_sandbox(sandbox, kind, engine)
        if not quiet:
            say_why_not_docker(sandbox, kind, docker_host)
    elif sandbox_kind and docker_host:
        where = f"{sandbox} at {docker_host}"
    notes = loaded_suite.notes + skipped
    runner, warmup = None, None
    if ray is None:
        runner = ModeRunner(model, sandbox=sandbox, docker_host=docker_host, max_steps=max_steps, timeout=timeout,
                            pool_size=(concurrency or 2) + 1, memory=memory, libraries=libs)
        if sandbox_kind:  # started before the clock runs: no episode's latency holds a sandbox start
            say("bench: starting the warm sandboxes")
            warmup = round(runner.warm_sandbox(), 3)
    meta = {"suite": loaded_suite.name, "model": model.name, "modes": modes, "sandbox": sandbox_kind,
            "docker_engine": engine if sandbox_kind else None,
            "seed": seed, "limit": limit, "concurrency": concurrency or (None if ray else 2),
            "tasks": len(loaded_suite.tasks), "notes": notes, "memory": memory, "ray": ray.address if ray else None,
            "libraries": list(libs.requirements), "sandbox_warmup_s": warmup,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_meta(out_dir, meta, resume)
    say(f"bench: {len(loaded_suite.tasks)} tasks × {len(modes)} modes ({', '.join(modes)}) on {model.name}"
        + (f", sandbox {where}" if sandbox_kind else "") + (f", Ray cluster {ray.address}" if ray else ""))
    counter = BenchProgress(not quiet, len(loaded_suite.tasks) * len(modes), every=progress_every)
    try:
        if ray is not None:
            config = RunConfig(model_name, base_url, thinking, sandbox, max_steps, timeout, loaded_suite.name,
                               not no_traces, model_env(), docker_host=docker_host, memory=memory,
                               libraries=libs.requirements)
            records = run_pairs_on_ray(loaded_suite.tasks, modes, config, ray, out_dir, resume=resume,
                                       concurrency=concurrency, on_record=counter.count, say=say)
        else:
            records = run_pairs(loaded_suite.tasks, modes, runner, out_dir, resume=resume,
                                concurrency=concurrency or 2, suite=loaded_suite.name, model=model.name,
                                sandbox=sandbox_kind, traces=not no_traces, on_record=counter.count)
    finally:
        counter.close()
    report_meta = {**meta, "modes": _modes_present(records)}
    report, chart = write_report(out_dir, records, report_meta, prices, price_source, notes)
    click.echo("\n".join(summary_lines(records, report_meta["modes"], prices)))
    click.echo(f"report: {report}" + (f"\nchart: {chart}" if chart else ""))
    for note in loaded_suite.notes[:1]:
        if note.startswith("only "):  # again at the end, where the numbers are read
            say(f"note: {note}")


def _modes_present(records: list[dict]) -> list[str]:
    present = list(dict.fromkeys(r["mode"] for r in records))
    return [m for m in MODES if m in present] + [m for m in present if m not in MODES]
