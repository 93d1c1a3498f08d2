"""The options `ask` and `chat` share for the run log and memory, and what they say about it."""

from __future__ import annotations

import functools

import click

from .logs import SHORT, plain


def run_log_options(command):
    """--no-log, --no-memory, --memory-items, --tag."""
    options = [
        click.option("--no-log", is_flag=True, help="Do not keep this run in the run log (see agentic-vision logs; "
                     "AGENTIC_VISION_LOGS=off for every run)."),
        click.option("--no-memory", is_flag=True, help="Do not give the model remembered corrections "
                     "(agentic-vision memory)."),
        click.option("--memory-items", type=click.IntRange(min=0), default=5, show_default=True,
                     envvar="AGENTIC_VISION_MEMORY_ITEMS", show_envvar=True,
                     help="At most this many remembered corrections go to the model."),
        click.option("--tag", "tags", multiple=True, metavar="NAME",
                     help="Tag the run; memory items scoped tag:NAME apply to it (repeatable)."),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def say_run_log(result) -> None:
    """On stderr: the memory items the run was given, and its id in the log."""
    for item in result.memory_used:
        click.secho(f"memory {item['id'][:SHORT]} used: {plain(item['text'], 160)}", err=True, dim=True)
    if result.run_id:
        click.secho(f"run {result.run_id[:SHORT]} logged (agentic-vision logs show {result.run_id[:SHORT]}; "
                    f"feedback {result.run_id[:SHORT]} TEXT corrects it)", err=True, dim=True)
