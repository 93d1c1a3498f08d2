"""What one run of model code gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

OUTCOME_OK = "OUTCOME_OK"
OUTCOME_FAILED = "OUTCOME_FAILED"
OUTCOME_DEADLINE_EXCEEDED = "OUTCOME_DEADLINE_EXCEEDED"
OUTCOMES = (OUTCOME_OK, OUTCOME_FAILED, OUTCOME_DEADLINE_EXCEEDED)


@dataclass(frozen=True)
class Image:
    """An image a run produced, already checked on the host side."""

    data: bytes
    mime_type: str
    width: int
    height: int

    def __repr__(self) -> str:
        return f"Image({self.mime_type}, {self.width}x{self.height}, {len(self.data)} bytes)"

    @property
    def extension(self) -> str:
        return {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}.get(
            self.mime_type, ".img"
        )


@dataclass
class Execution:
    outcome: str
    output: str
    images: list[Image] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == OUTCOME_OK
