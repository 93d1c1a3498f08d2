"""What a run of the agent gives back: the answer, the steps, the hosted-shape parts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..values import Image, Outcome, RunError, StopReason
from ..models.base import ModelImage, Usage


@dataclass
class Step:
    """One run of model code."""

    code: str
    outcome: Outcome
    output: str
    images: list[Image] = field(default_factory=list)
    duration_s: float = 0.0
    error: RunError | None = None  # the exception that ended the run, if one did

    def as_dict(self, image_paths: list[str] | None = None) -> dict:
        images = [
            {"mime_type": im.mime_type, "width": im.width, "height": im.height,
             "source": im.source.as_dict() if im.source else None, **({"path": p} if p else {})}
            for im, p in zip(self.images, image_paths or [None] * len(self.images))
        ]
        error = None if self.error is None else {"name": self.error.name, "value": self.error.value}
        return {"code": self.code, "outcome": self.outcome, "output": self.output, "images": images, "error": error}


@dataclass
class Turn:
    """One answer of the model: its thinking summary, its words, the runs it asked for."""

    thoughts: str = ""
    text: str = ""
    steps: list[Step] = field(default_factory=list)
    note: str = ""  # what the loop told the model after this turn, if anything


@dataclass
class Timings:
    model_s: float = 0.0
    sandbox_s: float = 0.0  # opening the sandbox (sandbox_start_s) and every run
    wall_s: float = 0.0
    sandbox_start_s: float = 0.0  # opening the session (with its input files), when this send opened it
    cold_start: bool = False  # that took a sandbox start, not a warm one from the pool


@dataclass
class AgentResult:
    question: str
    answer: str | None
    stop_reason: StopReason
    model: str
    sandbox: str
    turns: list[Turn] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    inputs: list[ModelImage] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    error: str | None = None
    run_id: str | None = None  # its id in the run store (agentic-vision logs show ID); None when not logged
    memory_used: list[dict] = field(default_factory=list)  # {"id", "text"} of the corrections it was given
    skipped: list[str] = field(default_factory=list)  # inputs of folders left out: "skipped /a/b.jpg: why"
    # name -> full-resolution (width, height) of the input images: what Step.images[j].source boxes are in
    input_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def steps(self) -> list[Step]:
        return [step for turn in self.turns for step in turn.steps]

    @property
    def answered(self) -> bool:
        return bool(self.answer)

    @property
    def parts(self) -> list:
        """The response in the hosted feature's shape, as ``google.genai.types.Part``s:
        thoughts and text, ``executable_code``, ``code_execution_result`` and
        ``inline_data`` images, in order; code written for hosted code execution
        reads it unchanged."""
        from google.genai import types  # heavy (~1.5 s), and only this property needs it

        parts = []
        for turn in self.turns:
            if turn.thoughts:
                parts.append(types.Part(text=turn.thoughts, thought=True))
            if turn.text:
                parts.append(types.Part(text=turn.text))
            for step in turn.steps:
                parts.append(types.Part(executable_code=types.ExecutableCode(language=types.Language.PYTHON, code=step.code)))
                parts.append(
                    types.Part(code_execution_result=types.CodeExecutionResult(outcome=step.outcome, output=step.output))
                )
                for image in step.images:
                    parts.append(types.Part(inline_data=types.Blob(data=image.data, mime_type=image.mime_type)))
        return parts

    def as_dict(self, image_paths: list[list[str]] | None = None) -> dict:
        steps = self.steps
        paths = image_paths or [None] * len(steps)
        return {
            "answer": self.answer,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "model": self.model,
            "sandbox": self.sandbox,
            "steps": [step.as_dict(p) for step, p in zip(steps, paths)],
            "usage": self.usage.as_dict(),
            "run_id": self.run_id,
            "memory_used": self.memory_used,
            "timings": {"model_s": round(self.timings.model_s, 3), "sandbox_s": round(self.timings.sandbox_s, 3),
                        "wall_s": round(self.timings.wall_s, 3),
                        "sandbox_start_s": round(self.timings.sandbox_start_s, 3),
                        "cold_start": self.timings.cold_start},
            **({"skipped": self.skipped} if self.skipped else {}),  # inputs of folders left out, for --json
        }
