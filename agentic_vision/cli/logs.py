"""`agentic-vision logs`, `feedback`, `remember` and `memory`: the run store from the terminal."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import click

from ..errors import InputError
from ..store import db_path, logging_switch, open_store, set_logging
from ..store.memory import normalise_scope

SHORT = 8  # digits of an id shown; any unique prefix of 4 or more is taken back


def _store():
    return open_store()


def plain(text: str | None, width: int | None = None) -> str:
    """One line for the terminal: whitespace collapsed, control characters shown escaped."""
    text = " ".join((text or "").split())
    text = re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def block(text: str | None) -> str:
    """Several lines for the terminal, control characters but newlines and tabs shown escaped."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", text or "")


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def parse_since(text: str) -> float:
    """2026-12-01, '2026-12-01 14:30', or an age: 30m, 12h, 7d, 2w."""
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if match:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return time.time() - int(match.group(1)) * seconds
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise InputError(f"--since {text!r}: give a date (2026-12-01, '2026-12-01 14:30') or an age (12h, 7d)") from None


# -- logs -----------------------------------------------------------------------------------


@click.group("logs", invoke_without_command=True)
@click.option("-n", "--count", type=click.IntRange(min=1), default=10, show_default=True, help="How many runs.")
@click.option("-q", "--query", default=None, help="Full-text search of questions, answers, code and output.")
@click.option("--model", default=None, help="Only runs of this model (or a model name that starts so).")
@click.option("--failed", is_flag=True, help="Only runs that ended without an answer.")
@click.option("--since", default=None, metavar="DATE|AGE", help="Only runs since a date (2026-12-01) or an age (12h, 7d).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.pass_context
def logs_command(ctx, count, query, model, failed, since, as_json) -> None:
    """List logged runs, newest first (see also: logs show ID, logs trace ID, logs path, logs on/off)."""
    if ctx.invoked_subcommand is not None:
        return
    since_ts = parse_since(since) if since else None
    if not db_path().exists():
        click.echo("[]" if as_json else f"no runs logged yet ({db_path()})")
        return
    runs = _store().runs(limit=count, query=query, model=model, failed=failed, since=since_ts)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in runs]))
        return
    if not runs:
        click.echo("no runs match")
    for r in runs:
        verdict = f"  [{r.verdict}]" if r.verdict else ""
        click.echo(f"{click.style(r.id[:SHORT], fg='yellow')}  {when(r.started_at)}  {r.model}  {r.stop_reason}{verdict}")
        click.echo(f"  Q: {plain(r.question, 160)}")
        if r.answer:
            click.echo(f"  A: {plain(r.answer, 160)}")


@logs_command.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def logs_show(run_id, as_json) -> None:
    """Print one run whole: inputs, memory used, each turn's thinking, code, output and images."""
    store = _store()
    run = store.run(store.resolve_run(run_id))
    if as_json:
        click.echo(json.dumps(run.as_dict()))
        return
    s = run.summary
    click.echo(f"run {s.id}  {when(s.started_at)}  {s.model}  sandbox {run.sandbox or '-'}  {s.stop_reason}"
               + (f"  [{s.verdict}]" if s.verdict else ""))
    click.echo(f"conversation {s.conversation_id[:SHORT]}, turn {s.turn_index + 1}")
    for item in run.inputs:
        click.echo(f"input: {item['name']} ({item['size']} bytes, sha256 {item['sha256'][:12]})"
                   + (f" from {item['origin']}" if item["origin"] else ""))
    for item in run.memory_used:
        click.echo(f"memory {item['id'][:SHORT]}: {plain(item['text'])}")
    click.echo(f"question: {block(s.question)}")
    for t, turn in enumerate(run.turns, 1):
        if turn["thoughts"]:
            click.echo(f"── turn {t}: thinking\n{block(turn['thoughts']).rstrip()}")
        if turn["text"]:
            click.echo(f"── turn {t}: model\n{block(turn['text']).rstrip()}")
        for n, step in enumerate(turn["steps"], 1):
            click.echo(f"── turn {t}, step {n}: {step['outcome']} in {step['duration_s']:.2f} s")
            click.echo(block(step["code"]).rstrip())
            if step["output"]:
                click.echo("output:\n" + block(step["output"]).rstrip())
            for im in step["images"]:
                origin = f" from {im['source']['input']} {im['source']['box']}" if im.get("source") else ""
                click.echo(f"image: {im['width']}x{im['height']} {im['mime_type']} sha256 {im['sha256'][:12]}{origin}")
        if turn["note"]:
            click.echo(f"(told the model: {plain(turn['note'])})")
    click.echo(f"answer: {block(s.answer) if s.answer else '(none)'}")
    if run.error:
        click.echo(f"error: {plain(run.error)}")
    usage = ", ".join(f"{k} {v}" for k, v in run.usage.items() if v)
    timings = ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in run.timings.items())
    click.echo(f"usage: {usage or '-'}; time: {timings or '-'}"
               + (f"; peak memory {run.peak_rss_kib // 1024} MiB" if run.peak_rss_kib else ""))


@logs_command.command("trace")
@click.argument("run_id")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: trace-ID.html here).")
def logs_trace(run_id, out) -> None:
    """Write a logged run's HTML trace."""
    from ..store.rebuild import to_result
    from ..trace import write_trace

    store = _store()
    run = store.run(store.resolve_run(run_id))
    path = Path(out or f"trace-{run.summary.id[:SHORT]}.html")
    if not path.parent.is_dir():
        raise InputError(f"--out {path}: the folder {path.parent} does not exist")
    write_trace(to_result(store, run), path)
    click.echo(str(path))


@logs_command.command("path")
def logs_path() -> None:
    """Print the run log's path."""
    click.echo(str(db_path()))


@logs_command.command("on")
def logs_on() -> None:
    """Log every run from now on (the default)."""
    set_logging(True)
    on, why = logging_switch()
    click.echo("runs are logged" if on else f"runs are still not logged: {why}")


@logs_command.command("off")
def logs_off() -> None:
    """Stop logging runs (memory items are still used)."""
    set_logging(False)
    click.echo("runs are no longer logged ('agentic-vision logs on' turns it back on)")


@logs_command.command("status")
def logs_status() -> None:
    """Say whether runs are logged, and where."""
    on, why = logging_switch()
    click.echo(f"{'on' if on else 'off'}: {why}; {db_path()}")


# -- feedback, remember, memory ------------------------------------------------------------


SCOPE_HELP = "Which runs get it: global (by relevance), a folder (runs on its images), or tag:NAME (runs given --tag NAME)."


@click.command("feedback")
@click.argument("run_id")
@click.argument("text")
@click.option("--wrong", "verdict", flag_value="wrong", help="The run's answer was wrong.")
@click.option("--right", "verdict", flag_value="right", help="The run's answer was right.")
@click.option("--scope", default="global", show_default=True, help=SCOPE_HELP)
def feedback_command(run_id, text, verdict, scope) -> None:
    """Attach a correction to a logged run; later related runs are told it."""
    scope = normalise_scope(scope)
    store = _store()
    full = store.resolve_run(run_id)
    run = store.run(full)
    context = "\n".join([run.summary.question, " ".join(item["name"] for item in run.inputs)])
    item = store.add_memory(text, scope=scope, run_id=full, verdict=verdict, context=context)
    if verdict:
        store.set_verdict(full, verdict)
    click.echo(f"memory {item.id[:SHORT]} saved: later runs like '{plain(run.summary.question, 60)}' get it")


@click.command("remember")
@click.argument("text")
@click.option("--scope", default="global", show_default=True, help=SCOPE_HELP)
def remember_command(text, scope) -> None:
    """Add a note that later runs are told (a standing correction)."""
    item = _store().add_memory(text, scope=normalise_scope(scope))
    click.echo(f"memory {item.id[:SHORT]} saved ({item.scope})")


@click.group("memory", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def memory_command(ctx, as_json) -> None:
    """List remembered corrections (see also: memory show ID, memory rm ID, memory edit ID)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(memory_list, as_json=as_json)


@memory_command.command("list")
@click.option("--json", "as_json", is_flag=True)
def memory_list(as_json) -> None:
    """List remembered corrections, newest first."""
    items = _store().memories() if db_path().exists() else []
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in items]))
        return
    if not items:
        click.echo("no memory items ('agentic-vision remember TEXT' or 'agentic-vision feedback ID TEXT' adds one)")
    for item in items:
        origin = f", from run {item.run_id[:SHORT]}" if item.run_id else ""
        click.echo(f"{click.style(item.id[:SHORT], fg='yellow')}  {when(item.created_at)}  {item.scope}{origin}")
        click.echo(f"  {plain(item.text, 200)}")


@memory_command.command("show")
@click.argument("item_id")
@click.option("--json", "as_json", is_flag=True)
def memory_show(item_id, as_json) -> None:
    """Print one memory item."""
    store = _store()
    item = store.memory(store.resolve_memory(item_id))
    if as_json:
        click.echo(json.dumps(item.as_dict()))
        return
    click.echo(f"memory {item.id}  {when(item.created_at)}  scope {item.scope}"
               + (f"  from run {item.run_id[:SHORT]}" if item.run_id else "")
               + (f"  ({item.verdict})" if item.verdict else ""))
    click.echo(block(item.text))


@memory_command.command("rm")
@click.argument("item_id")
def memory_rm(item_id) -> None:
    """Delete a memory item."""
    store = _store()
    full = store.resolve_memory(item_id)
    store.remove_memory(full)
    click.echo(f"memory {full[:SHORT]} deleted")


@memory_command.command("edit")
@click.argument("item_id")
@click.option("--text", default=None, help="The new text (default: edit it in $EDITOR).")
def memory_edit(item_id, text) -> None:
    """Change a memory item's text."""
    store = _store()
    full = store.resolve_memory(item_id)
    if text is None:
        if not click.get_text_stream("stdin").isatty():
            raise InputError("no terminal to edit in: give the new text with --text")
        text = click.edit(store.memory(full).text)
        if text is None:
            click.echo("unchanged")
            return
    store.edit_memory(full, text)
    click.echo(f"memory {full[:SHORT]} updated")
