"""Model backends, chosen by the model name.

``gemini-3-flash-preview`` (any name without a prefix) uses Gemini through
google-genai; ``openai:NAME`` an OpenAI-compatible server; ``ollama:NAME``
the local Ollama server.
"""

from __future__ import annotations

from .base import Conversation, Model, ModelImage, ModelTurn, Observation, ToolCall, ToolSpec, Usage

__all__ = ["Conversation", "Model", "ModelImage", "ModelTurn", "Observation", "ToolCall", "ToolSpec", "Usage", "get_model"]


def get_model(name: str, **options) -> Model:
    prefix, _, rest = name.partition(":")
    if rest and prefix in ("openai", "ollama"):
        from .openai_compat import OpenAIModel  # the openai SDK is heavy: only when asked for

        return OpenAIModel.from_name(prefix, rest, **options)
    if rest and prefix == "gemini":
        name = rest
    from .gemini import GeminiModel  # google-genai takes ~1.5 s to import: only when asked for

    return GeminiModel(name, **options)
