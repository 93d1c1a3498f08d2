"""Neutral values every layer shares: what a run gives back, how a run and an episode end.

The enums are ``StrEnum``s: a member *is* its wire string (``Outcome.OK ==
"OUTCOME_OK"``), so JSON output, traces and benchmark records stay the same
strings while the code compares against names, not literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """How one run of code ended: the names of hosted code execution's ``Outcome``."""

    OK = "OUTCOME_OK"
    FAILED = "OUTCOME_FAILED"
    DEADLINE_EXCEEDED = "OUTCOME_DEADLINE_EXCEEDED"
    UNSPECIFIED = "OUTCOME_UNSPECIFIED"  # hosted code whose result never came back



class StopReason(StrEnum):
    """Why an agent run (or a benchmark episode) ended."""

    ANSWERED = "answered"
    MAX_STEPS = "max_steps"  # the limit of code turns; the model was told to answer
    RETRIES_EXHAUSTED = "retries_exhausted"  # too many failed runs in a row; told to answer
    MODEL_ERROR = "model_error"  # the model API refused for good
    INTERRUPTED = "interrupted"  # Ctrl-C; the result so far is kept (ask --trace writes it)
    # Only the benchmark's episodes end these ways:
    NO_ANSWER = "no_answer"  # the model finished but wrote no text
    INPUT_ERROR = "input_error"  # the task's inputs could not be used
    HARNESS_ERROR = "harness_error"  # an unexpected failure, recorded instead of crashing the run
    WORKER_ERROR = "worker_error"  # a Ray worker or node died running it, after Ray's retries


class BenchMode(StrEnum):
    """The benchmark's ways of putting one task to the model (see bench/modes.py)."""

    DIRECT = "direct"  # the model alone, no tools
    HOSTED = "hosted"  # Gemini's own code execution
    LOCAL = "local"  # our loop and sandbox
    LOCAL_BLIND = "local-blind"  # our loop, the model never sees the images its code makes


BENCH_MODES = tuple(BenchMode)
LOCAL_MODES = (BenchMode.LOCAL, BenchMode.LOCAL_BLIND)


@dataclass(frozen=True)
class Source:
    """Which region of which input a shown image came from (checked on the host).

    ``box`` is [x0, y0, x1, y1] in the input's full-resolution pixels, turned
    ``angle`` degrees counter-clockwise about its centre (0: an axis-aligned
    box). ``how`` is "tracked" (followed through the code inside the sandbox)
    or "matched" (found in the input by the host), ``score`` 0..1.
    """

    input: str
    box: tuple[int, int, int, int]
    angle: float = 0.0
    how: str = "tracked"
    score: float = 1.0

    def as_dict(self) -> dict:
        return {"input": self.input, "box": list(self.box), "angle": self.angle, "how": self.how, "score": self.score}

    def describe(self) -> str:
        turned = f" turned {self.angle:g}°" if self.angle else ""
        matched = f" (matched, score {self.score:.2f})" if self.how == "matched" else ""
        return f"{self.input} {list(self.box)}{turned}{matched}"


@dataclass(frozen=True)
class Image:
    """An image a run produced, already checked on the host side."""

    data: bytes
    mime_type: str
    width: int
    height: int
    source: Source | None = None  # None: not taken from an input (a plot, a drawing), or not found

    def __repr__(self) -> str:
        return f"Image({self.mime_type}, {self.width}x{self.height}, {len(self.data)} bytes)"

    @property
    def extension(self) -> str:
        return {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}.get(
            self.mime_type, ".img"
        )


@dataclass(frozen=True)
class RunError:
    """The exception that ended a failed run (as e2b's code interpreter reports one):
    its type name, its message, and the traceback the model was shown."""

    name: str
    value: str
    traceback: str


@dataclass
class Execution:
    """What one run gave back.

    ``output`` is stdout and stderr together in the order they were written,
    with the sandbox's own notes (truncation, time limit, restart): what the
    model sees.  ``stdout`` and ``stderr`` are what the code wrote to each;
    ``error`` is set when the code raised (or was stopped), else None.
    """

    outcome: Outcome
    output: str
    images: list[Image] = field(default_factory=list)
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    error: RunError | None = None
    # A run the sandbox had to stop (time limit, death, violation): why, for a person, and the
    # note at the end of ``output`` that tells the model what it lost (not for a person).
    stopped: str = ""
    model_note: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK
