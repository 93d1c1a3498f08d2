"""``bench``'s counter of finished episodes on stderr (``ask`` has ``ask_display``)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.done = self.right = 0
        self.started = time.perf_counter()
        self._counting = False

    # -- bench: a counter of finished (task, mode) pairs ------------------------------

    def count(self, record: dict, done: int, total: int) -> None:
        self.done = done
        self.right += bool(record.get("correct"))
        if not self.enabled:
            return
        self._counting = True
        width = 24
        filled = int(width * done / max(1, total))
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (total - done) if done else 0
        sys.stderr.write(f"\rbench [{'#' * filled}{'-' * (width - filled)}] {done}/{total} "
                         f"{self.right} right  {elapsed:.0f}s elapsed, ~{eta:.0f}s left ")
        sys.stderr.flush()

    def close(self) -> None:
        if self._counting:
            sys.stderr.write("\n")
            sys.stderr.flush()
