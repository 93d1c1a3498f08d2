"""What the command line shows on stderr while it works, and nothing when disabled.

``ask`` hands ``Progress`` to the agent as its event hook (each step's code,
outcome and image sizes); ``bench`` feeds it each record for a one-line counter.
"""

from __future__ import annotations

import sys
import time

import click

from ..values import Outcome


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.done = self.right = 0
        self.started = time.perf_counter()
        self._counting = False

    def say(self, text: str, **style) -> None:
        if self.enabled:
            click.secho(text, err=True, **style)

    # -- ask: the agent's events ----------------------------------------------------

    def __call__(self, event: str, data: dict) -> None:
        if not self.enabled:
            return
        if event == "sandbox":
            self.say(f"sandbox: {data['kind']}", dim=True)
        elif event == "model" and data.get("thoughts"):
            first = data["thoughts"].strip().splitlines()[0]
            self.say(f"thinking: {first[:160]}", dim=True)
        elif event == "code":
            self.say(f"── step {data['number']} " + "─" * 40, fg="cyan")
            for line in data["code"].rstrip().splitlines()[:40]:
                self.say(f"  {line}")
        elif event == "step":
            step = data["step"]
            colour = "green" if step.outcome == Outcome.OK else "red"
            sizes = ", ".join(f"{im.width}x{im.height}" + (f" from {im.source.describe()}" if im.source else "")
                              for im in step.images)
            self.say(f"  → {step.outcome} in {step.duration_s:.2f} s" + (f", images: {sizes}" if sizes else ""),
                     fg=colour)
            out = step.output.strip().splitlines()
            for line in out[:8]:
                self.say(f"  | {line[:200]}", dim=True)
            if len(out) > 8:
                self.say(f"  | ... {len(out) - 8} more lines", dim=True)
        # "model_error" is reported once, at the end, by the command

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
