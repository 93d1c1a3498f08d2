"""Scripted stand-ins for the model side, for tests.

``ScriptedModel`` plays a script in memory through the ``Model`` interface
(for the loop's own rules); ``gemini_server`` and ``openai_server`` are
scripted HTTP servers that speak each provider's wire format (for the
adapters, driven by the real SDKs).
"""

from .scripted_model import (
    Generate,
    Observed,
    Prune,
    ScriptedConversation,
    ScriptedModel,
    UserMessage,
    call,
)

__all__ = ["Generate", "Observed", "Prune", "ScriptedConversation", "ScriptedModel", "UserMessage", "call"]
