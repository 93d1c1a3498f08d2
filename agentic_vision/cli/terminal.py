"""Text from the model (its answers, and what its code printed) on a user's terminal.

Model output is hostile: escape sequences in it would be interpreted by the
terminal (OSC 52 writes the clipboard, others set the window title or make
the terminal answer a query as if the user had typed it).  On a terminal,
control characters are shown escaped the way ``cat -v`` shows them (``^[``
for ESC, ``^G`` for BEL, ``M-^[`` for the 8-bit CSI), never interpreted;
newlines and tabs stay.  Pipes, files and ``--json`` keep the exact text.
"""

from __future__ import annotations

import sys
from typing import TextIO

import click

# C0 controls (but newline and tab), DEL, and the C1 controls U+0080-U+009F,
# which terminals that take 8-bit controls interpret as ESC sequences.
_ESCAPES = {c: f"^{chr(c + 64)}" for c in range(0x20) if c not in (0x09, 0x0A)}
_ESCAPES[0x7F] = "^?"
_ESCAPES.update({c: f"M-^{chr(c - 0x80 + 64)}" for c in range(0x80, 0xA0)})
_ESCAPES[0x9F] = "M-^?"
_TABLE = str.maketrans(_ESCAPES)


def escape_controls(text: str) -> str:
    """``text`` with every control character but newline and tab shown as ``cat -v`` shows it."""
    return text.translate(_TABLE)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def for_stream(text: str, stream: TextIO) -> str:
    """What of ``text`` may be written to ``stream``: escaped on a terminal, exact elsewhere."""
    return escape_controls(text) if is_terminal(stream) else text


def echo_untrusted(text: str, *, err: bool = False, nl: bool = True, **style) -> None:
    """Writes model-made text to stdout (or stderr): escaped (and styled) on a terminal,
    exact elsewhere (not through ``click.echo``, which would strip CSI sequences
    from a pipe)."""
    stream = sys.stderr if err else sys.stdout
    if is_terminal(stream):
        text = escape_controls(text)
        if style:
            text = click.style(text, **style)
    stream.write(text + ("\n" if nl else ""))
    stream.flush()
