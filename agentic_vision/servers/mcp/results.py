"""Tool results as MCP content: the outcome first, every image, bounded in size."""

from __future__ import annotations

import base64
from typing import Iterable

from mcp_types import CallToolResult, ImageContent, TextContent

from ...images import to_model_image
from ...loop.result import AgentResult
from ...values import Execution, Image


def text_result(text: str, error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=error)


def refusal(message: str) -> CallToolResult:
    """A request the server will not carry out: one line, and nothing was done."""
    return text_result(message, error=True)


def image_blocks(images: Iterable[Image], max_side: int, byte_cap: int) -> tuple[list[ImageContent], list[str]]:
    """Images downscaled to ``max_side``, until their bytes reach ``byte_cap``; and a note line for each."""
    blocks: list[ImageContent] = []
    notes: list[str] = []
    used = 0
    images = list(images)
    for i, image in enumerate(images, 1):
        shown = to_model_image(image, max_side)
        size = f"{image.width}x{image.height}"
        if (shown.width, shown.height) != (image.width, image.height):
            size += f", sent at {shown.width}x{shown.height}"
        if used + len(shown.data) > byte_cap:
            left = f"image {i} is" if i == len(images) else f"images {i} to {len(images)} are"
            notes.append(
                f"[{left} not included: one result carries at most {byte_cap // 1024} KiB of images; "
                "show fewer or smaller ones]"
            )
            break
        used += len(shown.data)
        blocks.append(ImageContent(type="image", data=base64.b64encode(shown.data).decode("ascii"),
                                   mime_type=shown.mime_type))
        notes.append(f"[image {i}: {size}]")
        if image.source:  # which part of which input it shows
            notes.append(f"image {i} from {image.source.describe()}")
    return blocks, notes


def execution_result(execution: Execution, max_side: int, byte_cap: int, notes: Iterable[str] = ()) -> CallToolResult:
    """The outcome on the first line, then the output; every image as image content."""
    blocks, image_notes = image_blocks(execution.images, max_side, byte_cap)
    lines = [execution.outcome]
    if execution.output:
        lines.append(execution.output.rstrip("\n"))
    lines.extend(image_notes)
    lines.extend(notes)
    text = TextContent(type="text", text="\n".join(lines) + "\n")
    return CallToolResult(content=[text, *blocks], is_error=not execution.ok)


def ask_result(result: AgentResult, max_side: int, byte_cap: int, trace_path: str | None) -> CallToolResult:
    """The answer first, then one line per step, the trace file; the images the code made."""
    lines = [result.answer or f"(no answer: {result.error or result.stop_reason})"]
    steps = result.steps
    if steps:
        lines.append("")
        lines.append(f"{len(steps)} step(s), stop reason: {result.stop_reason}, model: {result.model}")
    images: list[Image] = []
    for n, step in enumerate(steps, 1):
        first = next((line for line in step.code.strip().splitlines() if line.strip()), "")
        sizes = ", ".join(f"{im.width}x{im.height}" + (f" from {im.source.describe()}" if im.source else "")
                          for im in step.images)
        lines.append(f"step {n}: {step.outcome} in {step.duration_s:.1f} s: {first[:100]}"
                     + (f" -> images {sizes}" if sizes else ""))
        images.extend(step.images)
    blocks, notes = image_blocks(images, max_side, byte_cap)
    lines.extend(note for note in notes if not note.startswith(("[image ", "image ")))
    if trace_path:
        lines.append(f"trace: {trace_path}")
    text = TextContent(type="text", text="\n".join(lines) + "\n")
    return CallToolResult(content=[text, *blocks], is_error=not result.answer)
