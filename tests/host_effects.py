"""What an attack on the channel did to the host, as JSON facts, and the checks on them.

An attack's ``play_*`` function attacks a session and returns facts (what the
host kept of each run, its peak memory and wall time, whether the same
sandbox still serves); its ``check_*`` function judges them.  The facts are
JSON, so a host process of another user can play the attacks and the tests
judge them (test_attacks_unprivileged.py).
"""

from __future__ import annotations

import time
from pathlib import Path

TIMEOUT = 5.0
MEMORY_BOUND = 300 * 2**20
INVALID = "The sandbox sent an invalid message"


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class HostEffects:
    """Peak host memory above the start, and wall time, of what runs inside."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.rss = status("VmRSS")
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.started
        self.growth = status("VmHWM") - self.rss

    @property
    def facts(self) -> dict:
        return {"growth": self.growth, "seconds": self.seconds}


def check_effects(effects: dict, seconds: float = TIMEOUT + 5) -> None:
    assert effects["growth"] < MEMORY_BOUND, f"host memory grew by {effects['growth'] // 2**20} MiB"
    assert effects["seconds"] < seconds, f"took {effects['seconds']:.1f} s"


def execution(result) -> dict:
    """What the host kept of a run, as facts."""
    return {"outcome": result.outcome.value, "output": result.output, "images": len(result.images)}


def honest(session) -> dict:
    """A plain run after the attack: its facts, and how long it took."""
    started = time.monotonic()
    return dict(execution(session.run("print(1)")), seconds=time.monotonic() - started)


def check_honest(after: dict) -> None:
    assert after["outcome"] == "OUTCOME_OK", after["output"]
    assert after["output"].endswith("1\n")


def serving(session):
    """What serves the session now: its Docker container, or its local process."""
    return session.container or session.worker_pid


def wait_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.01)
    return predicate()


def one_note(output: str, text: str = INVALID) -> None:
    lines = [line for line in output.splitlines() if text in line]
    assert len(lines) == 1, output[-2000:]

