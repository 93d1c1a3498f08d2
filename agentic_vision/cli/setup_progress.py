"""One progress display for `sandbox setup`, from pip's output (which it hides; -v shows it).

pip says what it does line by line: ``Collecting numpy==1.26.4``,
``Downloading numpy-...whl (18.3 MB)``, ``Processing ./numpy-...whl``
(a local wheel), ``Installing collected packages: ...``.  On a terminal
that becomes one rich status line (the package, how many so far, how much
downloaded); elsewhere one plain line per package and per phase.
"""

from __future__ import annotations

import os
import re
import time

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

_COLLECTING = re.compile(r"^Collecting (\S+)")
_DOWNLOADING = re.compile(r"^\s*Downloading (\S+) \(([\d.]+) (kB|MB|GB|bytes)\)")
_PROCESSING = re.compile(r"^Processing (\S+\.whl)")
_INSTALLING = re.compile(r"^Installing collected packages: (.*)")
_UNITS = {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class SetupProgress:
    """Takes pip's lines (``on_pip_line``) and shows where the setup is."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.tty = self.console.is_terminal
        self.collected = 0
        self.downloaded = 0.0
        self.started = time.monotonic()
        self.current = "resolving the library list"
        self.spinner = Spinner("dots", style="cyan")
        self.live: Live | None = None

    def __rich__(self) -> Spinner:
        self.spinner.text = Text(f"{self.current} · {self.collected} packages, {_size(self.downloaded)} "
                                 f"downloaded · {time.monotonic() - self.started:.0f} s", style="dim")
        return self.spinner

    def __enter__(self) -> "SetupProgress":
        if self.tty:
            self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _say(self, text: str) -> None:
        if not self.tty:
            self.console.print(text, markup=False)

    def __call__(self, line: str) -> None:
        if m := _COLLECTING.match(line):
            self.collected += 1
            self.current = f"collecting {m.group(1)}"
        elif m := _DOWNLOADING.match(line):
            size = float(m.group(2)) * _UNITS[m.group(3)]
            self.downloaded += size
            self.current = f"downloading {m.group(1)} ({_size(size)})"
            self._say(f"  {self.current}")
        elif m := _PROCESSING.match(line):
            self.collected += 1
            try:
                size = os.path.getsize(m.group(1))
            except OSError:
                size = 0
            self.current = f"unpacking {os.path.basename(m.group(1))} ({_size(size)})"
            self._say(f"  {self.current}")
        elif m := _INSTALLING.match(line):
            names = [n.strip() for n in m.group(1).split(",") if n.strip()]
            self.current = f"installing {len(names)} packages ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
            self._say(self.current)
        else:
            return
        if self.live is not None:
            self.live.refresh()


def build_sandbox_env(python: str | None = None, verbose: bool = False, requirements=None) -> None:
    """``build_env`` as the command line runs it: pip's log with ``verbose``, else the progress display."""
    from ..sandboxing.environment import build_env

    if verbose:
        build_env(python, echo=lambda line: Console(stderr=True, highlight=False).print(line, markup=False, soft_wrap=True),
                  requirements=requirements)
        return
    with SetupProgress() as progress:
        build_env(python, echo=lambda line: progress.console.print(line, markup=False, soft_wrap=True), on_pip_line=progress,
                  requirements=requirements)
