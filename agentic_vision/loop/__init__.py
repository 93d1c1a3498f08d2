"""The Think -> Act -> Observe loop: the agent, its prompt and what it returns."""

from __future__ import annotations

from .agent import Agent, Chat
from .result import AgentResult, Step, Turn

__all__ = ["Agent", "AgentResult", "Chat", "Step", "Turn"]
