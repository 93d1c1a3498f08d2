"""Something on stderr while a slow step runs: a spinner with the seconds on a
terminal, one line otherwise (logs stay readable)."""

from __future__ import annotations

import itertools
import sys
import threading
import time

import click


class Spinner:
    def __init__(self, text: str, enabled: bool = True) -> None:
        self.text = text
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Spinner":
        if not self.enabled:
            return self
        if not self.tty:
            click.echo(f"{self.text} ...", err=True)
            return self
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._spin, daemon=True, name="spinner")
        self._thread.start()
        return self

    def _spin(self) -> None:
        for mark in itertools.cycle("|/-\\"):
            if self._stop.wait(0.15):
                break
            sys.stderr.write(f"\r{mark} {self.text} ({time.monotonic() - self._started:.0f} s)")
            sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
