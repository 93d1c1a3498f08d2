"""``--thinking`` for OpenAI-compatible servers, as the Chat Completions ``reasoning_effort``.

The same words as for Gemini (default, off, minimal, low, medium, high), sent as:

* ``default``: nothing; the server's and the model's own default.
* ``off``: ``reasoning_effort: "none"``, the value OpenAI (GPT-5.1 and later),
  vLLM and Ollama take for no reasoning (Ollama turns the model's thinking off).
  To a server other than api.openai.com and Ollama (vLLM, SGLang, llama.cpp,
  kind ``server``) also ``chat_template_kwargs: {"enable_thinking": false}``:
  vLLM hands ``reasoning_effort`` only to chat templates that read it
  (gpt-oss), while Qwen3-style templates read this switch.
* ``minimal``, ``low``, ``medium``, ``high``: ``reasoning_effort`` with that value.
  Ollama refuses ``minimal`` (it takes none, low, medium, high), so ``ollama:``
  models take every level but that one.

A model that takes no reasoning setting (gpt-4o, a model without thinking)
answers 400; :func:`refused` recognises that, and the backend says in one line
to drop ``--thinking``.
"""

from __future__ import annotations

import re

from ..errors import InputError

LEVELS = ("default", "off", "minimal", "low", "medium", "high")
OFF = "none"

# Servers word the refusal differently: OpenAI "Unsupported parameter: 'reasoning_effort'
# is not supported with this model."; Ollama '"llava" does not support thinking' or
# 'think value "low" is not supported for this model'; vLLM names the field it validated.
_REFUSAL = re.compile(r"reasoning|think|chat_template_kwargs", re.I)


def accepted(kind: str) -> tuple[str, ...]:
    """The levels a kind of server ("openai", "server", "ollama") takes."""
    return tuple(level for level in LEVELS if not (kind == "ollama" and level == "minimal"))


def check(kind: str, name: str, level: str | None) -> str:
    """The level, lower-cased, or InputError naming the levels ``name`` takes."""
    level = "default" if level in (None, "", "on") else str(level).strip().lower()
    if level not in accepted(kind):
        raise InputError(f"--thinking {level!r} is not a level {name} takes: use one of {', '.join(accepted(kind))}")
    return level


def effort(level: str) -> str | None:
    """The ``reasoning_effort`` sent for a level (None: the field is left out)."""
    return None if level == "default" else OFF if level == "off" else level


def extra_body(kind: str, level: str) -> dict:
    """Fields beside ``reasoning_effort`` (merged under the user's own ``extra_body``)."""
    if level == "off" and kind == "server":
        return {"chat_template_kwargs": {"enable_thinking": False}}
    return {}


def refused(status: int, message: str, param: str | None = None) -> bool:
    """Does this answer say the model does not take the reasoning setting sent?"""
    return status in (400, 422) and (param in ("reasoning_effort", "chat_template_kwargs")
                                     or bool(_REFUSAL.search(message)))
