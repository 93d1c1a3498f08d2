"""``bench``'s progress on stderr (``ask`` has ``ask_display``).

On a terminal a rich progress bar (done/total, right so far, rate, elapsed,
time left); elsewhere (CI, ``nohup``) one plain line every few seconds,
whether or not an episode finished, so a log shows the run is alive.
"""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


ETA_AFTER = 5  # finished episodes before the time left is estimated


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class BenchProgress:
    def __init__(self, enabled: bool, total: int, every: float = 10.0, stream=None) -> None:
        self.enabled = enabled
        self.total = total  # pairs to run; the runner's count replaces it at the first record
        self.every = every
        self.stream = stream or sys.stderr
        self.done = self.right = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Progress | None = None
        if not enabled:
            return
        if self.stream.isatty():
            self._bar = Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[right]} right · {task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                                 console=Console(file=self.stream), transient=False)
            self._task = self._bar.add_task("bench", total=total, right=0, rate="", left=self._left(0, total, 0.0))
            self._bar.start()
        else:
            self._thread = threading.Thread(target=self._tick, name="bench-progress", daemon=True)
            self._thread.start()

    def line(self) -> str:
        """``bench: 12/96 done (10 right), 1.5/min, 8m00s elapsed, ~56m00s left``."""
        with self._lock:
            done, total, right = self.done, self.total, self.right
        elapsed = time.monotonic() - self.started
        rate = done / elapsed * 60 if elapsed > 0 else 0.0
        left = self._left(done, total, elapsed)
        return (f"bench: {done}/{total} done ({right} right), {rate:.1f}/min, {_duration(elapsed)} elapsed, {left}")

    @staticmethod
    def _left(done: int, total: int, elapsed: float) -> str:
        # The first episodes include start-up and finish together: an estimate from them is noise.
        if done < min(total, ETA_AFTER):
            return f"time left known after {ETA_AFTER} results"
        return f"~{_duration((total - done) / done * elapsed)} left"

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def count(self, record: dict, done: int, total: int) -> None:
        """The runner's ``on_record``: one (task, mode) pair finished."""
        with self._lock:
            self.done, self.total = done, total
            self.right += bool(record.get("correct"))
        if self._bar is not None:
            elapsed = time.monotonic() - self.started
            self._bar.update(self._task, completed=done, total=total, right=self.right,
                             rate=f"{done / elapsed * 60:.1f}/min" if elapsed > 0 else "",
                             left=self._left(done, total, elapsed))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.stream.write(self.line() + "\n")
            self.stream.flush()
