"""Exit statuses of the command line, and the one-line way to leave with one.

1: the code or the model did not succeed; 2: bad usage or input; 3: the
sandbox is unavailable.  Shared by every command, the bench included.
"""

from __future__ import annotations

import os
import sys

import click
from click.core import ParameterSource

from ..errors import AgenticVisionError, InputError, SandboxUnavailable

EXIT_FAILED, EXIT_USAGE, EXIT_SANDBOX = 1, 2, 3


def fail(message: str, status: int) -> None:
    click.echo(f"agentic-vision: {message}", err=True)
    sys.exit(status)


def file_error(exc: OSError) -> InputError:
    """A file or folder the user named (--out, --trace...) that cannot be used, as one line."""
    where = f"{exc.filename}: " if exc.filename else ""
    return InputError(f"{where}{exc.strerror or exc}; check the path and its permissions")


def name_the_variable(exc: click.UsageError) -> click.UsageError:
    """A bad value that came from an environment variable names the variable: the user gave
    no --sandbox, so "Invalid value for '--sandbox'" would send them looking for one."""
    param, ctx = getattr(exc, "param", None), exc.ctx
    if not isinstance(exc, click.BadParameter) or param is None or ctx is None or not param.name:
        return exc
    if ctx.get_parameter_source(param.name) != ParameterSource.ENVIRONMENT:
        exc.param_hint = f"'{param.opts[0]}'"  # given on the command line: the variable is beside the point
        return exc
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
    variable = next((n for n in names if n in os.environ), names[0] if names else None)
    if variable:
        exc.param_hint = f"{variable} (the environment variable for {param.opts[0]})"
    return exc


def exit_status(exc: AgenticVisionError) -> int:
    if isinstance(exc, InputError):
        return EXIT_USAGE
    if isinstance(exc, SandboxUnavailable):
        return EXIT_SANDBOX
    return EXIT_FAILED  # ModelError and anything else the user cannot fix by retyping
