"""Model backends, chosen by the model name.

``gemini-3-flash-preview`` (any name without a prefix) uses Gemini through
google-genai; ``openai:NAME`` an OpenAI-compatible server; ``ollama:NAME``
the local Ollama server.  Names are checked here, before anything starts:
an empty name after a prefix, or another vendor's name without one (which
Gemini would answer with a bare 404), is one line that says what to write.
"""

from __future__ import annotations

import re

from ..errors import InputError
from .base import Conversation, Model, ModelImage, ModelTurn, Observation, ToolCall, ToolSpec, Usage

__all__ = ["Conversation", "Model", "ModelImage", "ModelTurn", "Observation", "ToolCall", "ToolSpec", "Usage",
           "check_model_name", "get_model"]

PREFIXES = ("openai", "ollama", "gemini")
_OPENAI_NAMES = re.compile(r"^(gpt-|chatgpt-|o\d|davinci|text-)", re.I)
_LOCAL_NAMES = re.compile(r"^(qwen|llava|llama|gemma3|minicpm|moondream|mistral|pixtral|phi|granite|internvl|bakllava)",
                          re.I)


def check_model_name(name: str, cli: bool = False) -> tuple[str, str]:
    """(prefix, name) for a model name, or InputError with what to write instead (naming the
    command line's --base-url, or for the library model_options={'base_url': ...})."""
    base_url = "--base-url URL" if cli else "model_options={'base_url': URL}"
    if not isinstance(name, str) or not name.strip():
        raise InputError("no model name: use e.g. gemini-3-flash-preview, openai:NAME or ollama:NAME")
    name = name.strip()
    prefix, colon, rest = name.partition(":")
    if colon and prefix in PREFIXES:
        if not rest.strip():
            example = {"ollama": "ollama:qwen2.5vl", "openai": "openai:gpt-4.1-mini",
                       "gemini": "gemini:gemini-3-flash-preview"}[prefix]
            raise InputError(f"no model name after '{prefix}:': write {prefix}:NAME, e.g. {example}")
        return prefix, rest.strip()
    if _OPENAI_NAMES.match(name):
        raise InputError(f"{name!r} looks like an OpenAI model, and names without a prefix go to Gemini: "
                         f"write openai:{name} (with OPENAI_API_KEY, or {base_url} for another server)")
    if name.lower().startswith("claude"):
        raise InputError(f"{name!r} is an Anthropic model, and names without a prefix go to Gemini: "
                         f"write openai:{name} with {base_url} of an OpenAI-compatible endpoint that serves it")
    if _LOCAL_NAMES.match(name):
        raise InputError(f"{name!r} looks like a local model, and names without a prefix go to Gemini: "
                         f"write ollama:{name} (Ollama) or openai:{name} with {base_url} (vLLM, llama.cpp)")
    return "gemini", name


def get_model(name: str, **options) -> Model:
    prefix, rest = check_model_name(name)
    if prefix in ("openai", "ollama"):
        from .openai_compat import OpenAIModel  # the openai SDK is heavy: only when asked for

        return OpenAIModel.from_name(prefix, rest, **options)
    from .gemini import GeminiModel  # google-genai takes ~1.5 s to import: only when asked for

    return GeminiModel(rest, **options)
