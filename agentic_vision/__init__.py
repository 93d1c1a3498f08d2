"""agentic-vision: code execution with images, on your own machine."""

from __future__ import annotations

from .errors import AgenticVisionError, InputError, ModelError, SandboxUnavailable
from .values import Execution, Image, Outcome, StopReason
from .sandboxing.session import Session, open_session

__all__ = [
    "AgenticVisionError",
    "Execution",
    "Image",
    "InputError",
    "ModelError",
    "Outcome",
    "SandboxUnavailable",
    "Session",
    "StopReason",
    "open_session",
]
__all__ += ["Agent", "AgentResult", "Chat"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The loop pulls in the model SDKs; load it only when asked for.
    if name in ("Agent", "Chat", "AgentResult"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(name)
