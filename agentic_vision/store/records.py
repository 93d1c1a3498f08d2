"""The values the run store takes and gives back, free of SQL."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InputRecord:
    """One input of a run: its name in the sandbox, its bytes, where it came from, and the
    image the model was shown for it (downscaled), if it was shown."""

    name: str
    data: bytes
    origin: str | None = None  # the path or URL the user gave
    shown: object | None = None  # models.base.ModelImage


@dataclass
class RunSummary:
    id: str
    started_at: float
    model: str
    question: str
    answer: str | None
    stop_reason: str
    conversation_id: str
    turn_index: int
    verdict: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class StoredRun:
    summary: RunSummary
    finished_at: float | None
    sandbox: str | None
    error: str | None
    usage: dict
    timings: dict
    settings: dict
    peak_rss_kib: int | None
    inputs: list[dict] = field(default_factory=list)  # name, sha256, size, origin
    turns: list[dict] = field(default_factory=list)  # thoughts, text, note, steps: [code, outcome, output, duration_s, images]
    memory_used: list[dict] = field(default_factory=list)  # id, text

    def as_dict(self) -> dict:
        return {**self.summary.as_dict(), "finished_at": self.finished_at, "sandbox": self.sandbox,
                "error": self.error, "usage": self.usage, "timings": self.timings, "settings": self.settings,
                "peak_rss_kib": self.peak_rss_kib, "inputs": self.inputs, "turns": self.turns,
                "memory_used": self.memory_used}


@dataclass
class MemoryItem:
    id: str
    created_at: float
    text: str
    scope: str = "global"
    run_id: str | None = None
    verdict: str | None = None
    context: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)
