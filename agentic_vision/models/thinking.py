"""Gemini's thinking settings, by model family, from one word: default, off, minimal,
low, medium or high.

Gemini 3 takes a thinking level (Flash: minimal, low, medium, high; Pro:
low, high) and cannot turn thinking off: ``off`` is the family's lowest
level with the thoughts not returned.  Gemini 2.5 takes a token budget:
``off`` is a budget of 0 (Flash, Flash-Lite) or Pro's minimum of 128;
low/medium/high are 1024/8192/24576 tokens.  Other names (older models,
tuned models): ``default`` asks for thoughts if there are any, ``off`` sends
no thinking setting at all.
"""

from __future__ import annotations

from google.genai import types

from ..errors import InputError

LEVELS = ("default", "off", "minimal", "low", "medium", "high")
BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}


def _family(model: str) -> str:
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("gemini-3"):
        return "3-pro" if "-pro" in name else "3-flash"
    if name.startswith("gemini-2.5"):
        return "2.5-pro" if "-pro" in name else "2.5-flash"
    return "none"


def accepted(model: str) -> tuple[str, ...]:
    return {
        "3-flash": ("default", "off", "minimal", "low", "medium", "high"),
        "3-pro": ("default", "off", "low", "high"),
        "2.5-flash": ("default", "off", "low", "medium", "high"),
        "2.5-pro": ("default", "off", "low", "medium", "high"),
        "none": ("default", "off"),
    }[_family(model)]


def check(model: str, level: str | None) -> str:
    """The level, lower-cased, or InputError naming the levels this model takes."""
    level = "default" if level in (None, "", "on") else str(level).strip().lower()
    if level not in accepted(model):
        raise InputError(f"--thinking {level!r} is not a level {model} takes: use one of "
                         f"{', '.join(accepted(model))}")
    return level


def config(model: str, level: str) -> types.ThinkingConfig | None:
    family = _family(model)
    if level == "default":
        return types.ThinkingConfig(include_thoughts=True)
    if family == "none":
        return None
    if family.startswith("3"):
        if level == "off":
            lowest = types.ThinkingLevel.LOW if family == "3-pro" else types.ThinkingLevel.MINIMAL
            return types.ThinkingConfig(include_thoughts=False, thinking_level=lowest)
        return types.ThinkingConfig(include_thoughts=True, thinking_level=types.ThinkingLevel(level.upper()))
    if level == "off":
        return types.ThinkingConfig(include_thoughts=False, thinking_budget=128 if family == "2.5-pro" else 0)
    return types.ThinkingConfig(include_thoughts=True, thinking_budget=BUDGETS[level])
