"""The global -v / -q / --log-level: how much the command line says, and the log it keeps.

``agentic-vision -v ask ...`` logs at INFO (``-vv`` DEBUG) and lets commands
show more (``sandbox setup -v``: pip's own log); ``-q`` logs only errors and
silences the progress of every command; ``--log-level`` sets the level
exactly.  Log records go to stderr: through rich on a terminal, one plain
line each elsewhere.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import click

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Verbosity:
    verbose: int = 0
    quiet: bool = False

    @property
    def level(self) -> int:
        if self.quiet:
            return logging.ERROR
        return {0: logging.WARNING, 1: logging.INFO}.get(self.verbose, logging.DEBUG)


def current() -> Verbosity:
    """The global flags of the command being run (the defaults outside one)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Verbosity) else Verbosity()


def quiet(local_flag: bool = False) -> bool:
    """A command's own --quiet, or the global -q."""
    return local_flag or current().quiet


def configure_logging(level: int) -> None:
    """Our loggers (``agentic_vision.*``) at ``level``, written to stderr; other libraries' stay at
    WARNING unless DEBUG was asked for."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False,
                                               rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level <= logging.DEBUG else logging.WARNING)
    logging.getLogger("agentic_vision").setLevel(level)
