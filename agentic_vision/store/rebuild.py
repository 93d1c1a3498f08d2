"""A stored run back as the loop's AgentResult, for its HTML trace (`logs trace`)."""

from __future__ import annotations

from ..models.base import ModelImage, Usage
from ..values import Image, Outcome, Source, StopReason
from .base import RunStore
from .records import StoredRun

from functools import lru_cache


@lru_cache(maxsize=1)
def _pruned() -> bytes:
    """Shown where an image was pruned from the log to keep it under its size budget."""
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), (200, 200, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _enum(kind, value: str):
    try:
        return kind(value)
    except ValueError:
        return value


def to_result(store: RunStore, run: StoredRun):
    from ..loop.result import AgentResult, Step, Timings, Turn

    s = run.summary
    usage = Usage(**{k: run.usage.get(k, 0) for k in ("prompt_tokens", "output_tokens", "thoughts_tokens",
                                                      "tool_use_prompt_tokens")})
    timings = Timings(**{k: run.timings.get(k, 0.0) for k in ("model_s", "sandbox_s", "wall_s")})
    inputs = []
    for item in run.inputs:
        data = store.blob(item["shown_blob"]) if item["shown_blob"] else None
        if item["shown_blob"]:
            inputs.append(ModelImage(data or _pruned(), "image/png" if data is None else _mime(data),
                                     item["shown_width"] or 1, item["shown_height"] or 1, label=item["name"]))
    turns = []
    for turn in run.turns:
        steps = []
        for step in turn["steps"]:
            images = []
            for im in step["images"]:
                data = store.blob(im["sha256"])
                images.append(Image(data or _pruned(), im["mime_type"] if data else "image/png", im["width"], im["height"],
                                    _source(im.get("source"))))
            steps.append(Step(step["code"], _enum(Outcome, step["outcome"]), step["output"], images, step["duration_s"]))
        turns.append(Turn(turn["thoughts"], turn["text"], steps, turn["note"]))
    shown = {item["name"] for item in run.inputs if item["shown_blob"]}
    return AgentResult(
        question=s.question, answer=s.answer, stop_reason=_enum(StopReason, s.stop_reason), model=s.model,
        sandbox=run.sandbox or "", turns=turns, usage=usage, timings=timings, inputs=inputs,
        files=[item["name"] for item in run.inputs if item["name"] not in shown], error=run.error,
        run_id=s.id, memory_used=run.memory_used,
        input_sizes={item["name"]: (item["width"], item["height"]) for item in run.inputs if item.get("width")},
    )


def _source(data: dict | None) -> Source | None:
    if not data:
        return None
    return Source(data["input"], tuple(data["box"]), data.get("angle", 0.0), data.get("how", "tracked"),
                  data.get("score", 1.0))


def _mime(data: bytes) -> str:
    from ..images import sniff_image

    return sniff_image(data) or "image/png"
