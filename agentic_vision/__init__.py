"""agentic-vision: code execution with images, on your own machine."""

from __future__ import annotations

from .errors import AgenticVisionError, InputError, ModelError, SandboxUnavailable
from .values import Execution, Image, Outcome, RunError, Source, StopReason
from .sandboxing.session import Session, open_session
from .loop import Agent, AgentResult, Chat
from .loop.agent import ChatStopped
from .aio import AsyncChat, AsyncSession

__all__ = [
    "Agent",
    "AgentResult",
    "AgenticVisionError",
    "AsyncChat",
    "AsyncSession",
    "Chat",
    "ChatStopped",
    "Execution",
    "Image",
    "InputError",
    "ModelError",
    "Outcome",
    "RunError",
    "SandboxUnavailable",
    "Session",
    "Source",
    "StopReason",
    "open_session",
]
__version__ = "0.1.0"
