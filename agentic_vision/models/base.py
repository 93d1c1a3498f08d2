"""The small interface every model backend implements.

A backend turns the loop's neutral messages into its own wire format and
keeps its own history, because each provider has rules about it (Gemini
rejects a function call whose thought signature was dropped; OpenAI wants a
``tool`` message per call id).  The loop only ever sees these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..values import Outcome


@dataclass(frozen=True)
class ModelImage:
    """An image as it goes to the model (already downscaled and converted)."""

    data: bytes
    mime_type: str
    width: int
    height: int
    label: str = ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    thoughts_tokens: int = 0
    tool_use_prompt_tokens: int = 0

    @classmethod
    def of(cls, prompt=None, output=None, thoughts=None, tool_use=None) -> "Usage":
        """From an API's token counts, any of which may be missing (None)."""
        return cls(prompt or 0, output or 0, thoughts or 0, tool_use or 0)

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.output_tokens + other.output_tokens,
            self.thoughts_tokens + other.thoughts_tokens,
            self.tool_use_prompt_tokens + other.tool_use_prompt_tokens,
        )

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "thoughts_tokens": self.thoughts_tokens,
            "tool_use_prompt_tokens": self.tool_use_prompt_tokens,
        }


@dataclass
class ToolCall:
    """A request from the model to run code; ``error`` when its arguments were unusable."""

    id: str | None
    code: str
    error: str | None = None
    name: str | None = None  # the tool name the model used, when not ours
    signature: bytes | None = None  # Gemini's thought signature on the call, kept for replays


@dataclass
class ModelTurn:
    text: str = ""
    thoughts: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    signature: bytes | None = None  # Gemini's thought signature on the text, kept for replays


@dataclass
class Observation:
    """What one run gave back, as the model will see it."""

    call: ToolCall
    outcome: Outcome
    output: str
    images: list[ModelImage] = field(default_factory=list)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str

    @property
    def parameters(self) -> dict:
        return {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source to run."}},
            "required": ["code"],
        }


class Conversation(Protocol):
    def add_user(self, text: str, images: list[ModelImage]) -> None: ...

    def add_model(self, turn: ModelTurn) -> None:
        """A model turn from earlier (a client resending the whole chat), as if the model had
        just given it; its calls are answered by the next ``add_observations``."""

    def generate(self, *, allow_tools: bool = True, on_text: Callable[[str, bool], None] | None = None) -> ModelTurn:
        """The model's next turn; raises ModelError when the API refuses for good.
        ``on_text(words, is_thought)`` gets the text as it arrives, where the backend streams."""

    def add_observations(self, observations: list[Observation], note: str | None = None) -> None:
        """The results of the calls of the last turn, then ``note`` (text from the loop) if any."""

    def prune_images(self, keep: int) -> int:
        """Replaces all but the newest ``keep`` observation images by a note; returns how many."""


class Model(Protocol):
    """What the loop and the benchmark ask of a backend.  Backends subclass it, so
    the hooks with a default here need no code where the default is right."""

    name: str  # the routing name get_model takes back: "gemini-...", "openai:...", ...

    def start(self, system: str, tool: ToolSpec) -> Conversation:
        """A new conversation with this system instruction and this one tool."""
        raise NotImplementedError

    def check_ready(self, reachable: bool = True) -> None:
        """Raises InputError when the model cannot be used at all (no API key...), before a
        sandbox starts, and with ``reachable`` ModelError when its API does not answer from
        here; the default has nothing to check."""


def refusal_message(code: int, message: str, *, model: str, key_hint: str, retries: int,
                    server: str | None = None, status: str = "") -> str:
    """One line for an HTTP error of a model API, the same for every backend.

    ``server`` names who answered (None: "the model API"); ``key_hint`` says
    where the key comes from; ``retries`` is how often the client retried.
    """
    label = f"{code} {status}" if status else str(code)
    detail = f": {message}" if message else ""
    who = server or "the model API"
    if code in (401, 403):
        by = f" by {server}" if server else ""
        return f"the API key was refused{by} ({label}): check {key_hint}" + (f" ({message})" if message else "")
    if code == 404:
        at = f" at {server}" if server else ""
        return f"unknown model {model!r}{at} (404){detail}"
    if code == 429:
        return f"rate limited (429) even after {retries} retries{detail}"
    if code >= 500:
        return f"{who} answered {label} even after {retries} retries{detail}"
    return f"{who} answered {label}{detail}"


def elided_note(image: ModelImage) -> str:
    label = f" ({image.label})" if image.label else ""
    return f"[an earlier image{label}, {image.width}x{image.height}, was removed to save context]"
