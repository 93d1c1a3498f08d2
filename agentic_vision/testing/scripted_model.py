"""An in-memory model that plays a script, for tests of the loop's own rules.

The loop talks to it through the same ``Model``/``Conversation`` interface as
to Gemini or an OpenAI-compatible server, with no HTTP in between.  It
records every call it receives (the system prompt and tool, each user message
with its images, the observations and notes, the prune requests), answers
each ``generate()`` with the next step of the script, and fails the test with
an ``AssertionError`` that names the step when the loop does what the script
did not expect.

    model = ScriptedModel([call("print(6 * 7)"), "42"])
    result = Agent(model=model, sandbox="local").run("Six times seven?")
    model.assert_complete()
    model.conversation.observations[0].output  # '42\\n'

A step is a ``ModelTurn``, a ``str`` (a text answer), an exception to raise
(``ModelError(...)``), or a function of the conversation so far that returns
one of those.  The whole script may also be one such function: it then
answers every ``generate()`` and is never exhausted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence, Union

from ..models.base import Model, ModelImage, ModelTurn, Observation, ToolCall, ToolSpec

Reply = Union[ModelTurn, str, BaseException]
Step = Union[Reply, Callable[["ScriptedConversation"], Reply]]


def call(*codes: str, text: str = "", thoughts: str = "") -> ModelTurn:
    """A turn that asks to run each of ``codes`` (several: parallel calls)."""
    return ModelTurn(text=text, thoughts=thoughts, calls=[ToolCall(None, code) for code in codes])


# -- what the conversation received, in order ----------------------------------------


@dataclass(frozen=True)
class UserMessage:
    text: str
    images: list[ModelImage]


@dataclass(frozen=True)
class Generate:
    step: int  # the script step (1-based) that answered it
    allow_tools: bool


@dataclass(frozen=True)
class Observed:
    observations: list[Observation]
    note: str | None


@dataclass(frozen=True)
class Prune:
    keep: int
    removed: int


Record = Union[UserMessage, Generate, Observed, Prune]


class ScriptedModel(Model):
    """A ``Model`` whose turns come from ``script``; one script across all its conversations."""

    def __init__(self, script: Sequence[Step] | Callable[["ScriptedConversation"], Reply], name: str = "scripted") -> None:
        self.name = name
        self._function = script if callable(script) else None
        self._steps = [] if callable(script) else list(script)
        self.used = 0  # steps played so far
        self.conversations: list[ScriptedConversation] = []

    def start(self, system: str, tool: ToolSpec) -> "ScriptedConversation":
        conversation = ScriptedConversation(self, system, tool)
        self.conversations.append(conversation)
        return conversation

    @property
    def conversation(self) -> "ScriptedConversation":
        """The only conversation (an ``Agent.run`` or one ``Chat``)."""
        assert len(self.conversations) == 1, f"ScriptedModel: {len(self.conversations)} conversations were started, not 1"
        return self.conversations[0]

    def assert_complete(self) -> None:
        """Fails when the loop stopped before it played every step of the script."""
        left = len(self._steps) - self.used
        assert left <= 0, (
            f"ScriptedModel: {left} of {len(self._steps)} script steps were never played; the loop stopped after "
            f"step {self.used} and step {self.used + 1} is {describe(self._steps[self.used])}"
        )

    def _next(self, conversation: "ScriptedConversation", allow_tools: bool) -> ModelTurn:
        if self._function is not None:
            step: Step = self._function
        else:
            assert self.used < len(self._steps), (
                f"ScriptedModel: generate() was called for step {self.used + 1}, but the script has only "
                f"{len(self._steps)} steps (allow_tools={allow_tools}; the last thing the loop sent: "
                f"{describe(conversation.log[-1]) if conversation.log else 'nothing'})"
            )
            step = self._steps[self.used]
        self.used += 1
        conversation.log.append(Generate(self.used, allow_tools))
        reply = step(conversation) if callable(step) else step
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            return ModelTurn(text=reply)
        assert isinstance(reply, ModelTurn), f"ScriptedModel: step {self.used} gave {reply!r}, not a turn"
        # A copy with ids as a provider gives them, so a step object can be played more than once.
        calls = [replace(c, id=c.id or f"call-{self.used}-{i}") for i, c in enumerate(reply.calls, 1)]
        return replace(reply, calls=calls)


class ScriptedConversation:
    """One conversation: the log of what the loop sent, and the images still in context."""

    def __init__(self, model: ScriptedModel, system: str, tool: ToolSpec) -> None:
        self.model = model
        self.system = system
        self.tool = tool
        self.log: list[Record] = []
        self._pending: list[ToolCall] = []  # the calls of the last turn, until they are answered
        self._kept: list[ModelImage] = []  # observation images not pruned, oldest first
        self.pruned: list[ModelImage] = []

    # -- the Conversation interface --------------------------------------------------

    def add_user(self, text: str, images: list[ModelImage]) -> None:
        self._expect_no_pending("add_user()")
        self.log.append(UserMessage(text, list(images)))

    def generate(self, *, allow_tools: bool = True) -> ModelTurn:
        self._expect_no_pending("generate()")
        turn = self.model._next(self, allow_tools)
        self._pending = list(turn.calls)
        return turn

    def add_observations(self, observations: list[Observation], note: str | None = None) -> None:
        answered = [o.call for o in observations]
        assert answered == self._pending and all(a is p for a, p in zip(answered, self._pending)), (
            f"ScriptedModel: add_observations() after step {self.model.used} answered {len(answered)} call(s), "
            f"but that step asked for {len(self._pending)}: {[c.code for c in self._pending]!r}"
        )
        self._pending = []
        self.log.append(Observed(list(observations), note))
        self._kept.extend(image for o in observations for image in o.images)

    def prune_images(self, keep: int) -> int:
        excess = max(0, len(self._kept) - keep)
        self.pruned += self._kept[:excess]
        self._kept = self._kept[excess:]
        self.log.append(Prune(keep, excess))
        return excess

    # -- what tests read ---------------------------------------------------------------

    def records(self, kind: type) -> list:
        return [r for r in self.log if isinstance(r, kind)]

    @property
    def user_messages(self) -> list[UserMessage]:
        return self.records(UserMessage)

    @property
    def observations(self) -> list[Observation]:
        return [o for r in self.records(Observed) for o in r.observations]

    @property
    def notes(self) -> list[str]:
        return [r.note for r in self.records(Observed) if r.note]

    @property
    def generations(self) -> list[Generate]:
        return self.records(Generate)

    @property
    def prunes(self) -> list[Prune]:
        return self.records(Prune)

    @property
    def context_images(self) -> list[ModelImage]:
        """The images the model would see now: every user image and the observation images not pruned."""
        return [image for r in self.user_messages for image in r.images] + list(self._kept)

    def _expect_no_pending(self, what: str) -> None:
        assert not self._pending, (
            f"ScriptedModel: {what} while the {len(self._pending)} call(s) of step {self.model.used} "
            "have no observations yet"
        )


def describe(item) -> str:
    if isinstance(item, ModelTurn):
        return f"a turn with {len(item.calls)} call(s) and text {item.text[:60]!r}"
    if isinstance(item, Observed):
        return f"observations {[o.outcome for o in item.observations]} with note {item.note!r}"
    return repr(item)[:200]
