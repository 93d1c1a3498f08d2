"""Exit statuses of the command line, and the one-line way to leave with one.

1: the code or the model did not succeed; 2: bad usage or input; 3: the
sandbox is unavailable.  Shared by every command, the bench included.
"""

from __future__ import annotations

import sys

import click

from ..errors import AgenticVisionError, InputError, SandboxUnavailable

EXIT_FAILED, EXIT_USAGE, EXIT_SANDBOX = 1, 2, 3


def fail(message: str, status: int) -> None:
    click.echo(f"agentic-vision: {message}", err=True)
    sys.exit(status)


def file_error(exc: OSError) -> InputError:
    """A file or folder the user named (--out, --trace...) that cannot be used, as one line."""
    where = f"{exc.filename}: " if exc.filename else ""
    return InputError(f"{where}{exc.strerror or exc}; check the path and its permissions")


def exit_status(exc: AgenticVisionError) -> int:
    if isinstance(exc, InputError):
        return EXIT_USAGE
    if isinstance(exc, SandboxUnavailable):
        return EXIT_SANDBOX
    return EXIT_FAILED  # ModelError and anything else the user cannot fix by retyping
