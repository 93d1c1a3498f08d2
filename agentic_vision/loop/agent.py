"""The Think → Act → Observe loop.

The model gets the question, the images and a tool that runs Python in the
sandbox; each run's output and images go back to it, until it answers or a
limit is reached.  Code that fails is data for the model, never a crash of
the loop: only the user's own mistakes (bad input, no key) raise.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

from ..errors import InputError, ModelError
from ..values import Outcome, StopReason
from ..images import to_model_image
from ..inputs import DEFAULT_MAX_PIXELS
from ..inputs.sources import InputOptions, Inputs, prepare_inputs
from ..inputs.urls import MAX_BYTES, TIMEOUT
from ..sandboxing.executors import as_library_set, check_libraries
from ..sandboxing.libraries import available_libraries
from ..models import get_model
from ..models.base import Model, ModelImage, ModelTurn, Observation, ToolSpec
from .prompt import NO_MORE_CODE, RESUMED, SYSTEM, TOOL_NAME, tool_description
from .result import AgentResult, Step, Timings, Turn
from ..store.base import RunStore
from ..store.recorder import RunRecorder
from ..sandboxing.session import InputFile, RunInterrupted, Session, open_session


log = logging.getLogger(__name__)


@dataclass
class Settings:
    timeout: float = 30.0  # seconds per run, as hosted
    max_retries: int = 5  # consecutive failed runs after the first, as hosted
    max_steps: int = 12  # model turns that ask for code
    max_image_side: int = 1536  # longest side of any image sent to the model
    max_pixels: int = DEFAULT_MAX_PIXELS  # largest input image, on the host and inside the sandbox
    pages: str | int | None = None  # PDF pages shown ("3", "2-5"); None: the first few
    max_download_bytes: int = MAX_BYTES  # inputs given as URLs
    download_timeout: float = TIMEOUT
    max_context_images: int = 12  # observation images kept in context; older ones become a note
    show_images: bool = True  # False: the "blind" ablation, text output only
    guard: bool = True
    system: str = SYSTEM
    stream: bool = False  # pass the model's words on as they arrive ("text" events), where the backend can
    log: bool = True  # keep the run in the run store (logs.db); AGENTIC_VISION_LOGS=off overrides
    memory: bool = True  # give the model the user's earlier corrections that fit the run
    memory_items: int = 5  # at most this many corrections per conversation
    memory_chars: int = 1200  # and at most this much of their text (about 300 tokens)
    tags: tuple = ()  # tags of the run: memory items scoped tag:NAME apply to it


Event = Callable[[str, dict], None]
INTERRUPTED_NOTE = "[interrupted (Ctrl-C) while this ran]"


class ChatStopped(Exception):
    """``Chat.stop()`` was called (e.g. an asyncio task was cancelled): the loop ended early."""


@dataclass
class PastUser:
    """A user turn of a conversation kept by the caller (a chat client resending it all)."""

    text: str
    images: list = field(default_factory=list)  # as for ``Chat.send(images=...)``


@dataclass
class PastObservations:
    """The results the calls of the model turn before it got."""

    observations: list[Observation]


# A conversation the caller kept itself, oldest first: PastUser, ModelTurn, PastObservations.
History = list


def _as_list(sources) -> list:
    """``images="photo.png"`` means one image, not one per character."""
    if isinstance(sources, (str, bytes, bytearray, os.PathLike)) or not isinstance(sources, Iterable):
        return [sources]
    return list(sources)


def _settings(given: dict) -> Settings:
    """Settings from Agent's keyword arguments; a misspelt one is named with its likely fix
    (not Settings.__init__'s "unexpected keyword argument")."""
    known = [f.name for f in fields(Settings)]
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the settings are {', '.join(known)}"
            raise TypeError(f"Agent() has no setting {name!r}: {hint}")
    return Settings(**given)


class Agent:
    """A vision model with a sandbox to run code in.

    >>> agent = Agent(model="gemini-3-flash-preview", sandbox="local")
    >>> result = agent.run("How many coins?", images=["coins.png"])
    """

    def __init__(
        self,
        model: str | Model = "gemini-3-flash-preview",
        sandbox: str = "auto",
        *,
        on_event: Event | None = None,
        model_options: dict | None = None,
        sandbox_options: dict | None = None,
        stop: threading.Event | None = None,
        store: RunStore | None = None,
        libraries=None,
        **settings,
    ) -> None:
        """``stop``: once set, input preparation under way (a PDF being rendered) ends at once;
        a server sets it when the client goes away.  ``libraries``: extra requirements
        (``["scikit-image", "mypkg==1.0"]``) set up with ``agentic-vision sandbox setup --with ...``
        (local) or built with ``sandbox build --with ...`` (Docker); None keeps the default
        environment of the hosted libraries."""
        self.model = get_model(model, **(model_options or {})) if isinstance(model, str) else model
        self.sandbox = sandbox
        self.sandbox_options = dict(sandbox_options or {})  # for open_session, e.g. pool_size
        # libraries may come as a sandbox option too (open_session takes it): servers pass it so.
        given = self.sandbox_options.pop("libraries", None)
        self.libraries = as_library_set(libraries if libraries is not None else given)  # malformed: InputError now
        self.settings = _settings(settings)
        self.on_event = on_event
        self.stop = stop
        self.store = store  # None: the default run store, opened when a run first needs it

    def run(self, question: str, images: Iterable = (), files: Iterable = ()) -> AgentResult:
        with self.chat() as chat:
            return chat.send(question, images=images, files=files)

    def chat(self) -> "Chat":
        return Chat(self)

    async def arun(self, question: str, images: Iterable = (), files: Iterable = ()) -> AgentResult:
        """``run`` for asyncio (see ``agentic_vision.aio``: cancelling it stops the run)."""
        async with self.achat() as chat:
            return await chat.send(question, images=images, files=files)

    def achat(self):
        """``chat`` for asyncio: an ``agentic_vision.aio.AsyncChat``."""
        from ..aio import AsyncChat  # aio imports this module

        return AsyncChat(self)


class Chat:
    """A multi-turn conversation: the sandbox and the history live between turns."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.settings = agent.settings
        self.session: Session | None = None
        self.conversation = None
        self.results: list[AgentResult] = []
        self._image_count = 0
        self._running: Step | None = None
        s = self.settings
        self.recorder = RunRecorder(log_runs=s.log, use_memory=s.memory, memory_items=s.memory_items,
                                    memory_chars=s.memory_chars, tags=tuple(s.tags), store=agent.store)
        self._running_since = 0.0
        self._stopped = threading.Event()

    def __enter__(self) -> "Chat":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.agent.store is None:  # a store the caller gave stays theirs to close
            self.recorder.close()

    def stop(self) -> None:
        """Ends the chat from another thread: a run in progress is killed at once, and
        ``send`` raises ``ChatStopped`` at its next event (a model request in flight is
        waited for, its answer discarded).  A stopped chat takes no more messages."""
        self._stopped.set()
        session = self.session
        if session is not None:
            session.interrupt()

    def _emit(self, event: str, **payload) -> None:
        if self._stopped.is_set():
            raise ChatStopped("the chat was stopped")
        if self.agent.on_event is not None:
            self.agent.on_event(event, payload)

    # -- inputs -----------------------------------------------------------------

    def _prepare(self, images: Iterable, files: Iterable) -> Inputs:
        s = self.settings
        options = InputOptions(max_side=s.max_image_side, max_pixels=s.max_pixels, pages=s.pages,
                               max_download_bytes=s.max_download_bytes, download_timeout=s.download_timeout,
                               stop=self.agent.stop)
        images, files = _as_list(images), _as_list(files)
        inputs = prepare_inputs(images, files, options, unnamed_start=self._image_count)
        self._image_count = inputs.unnamed
        return inputs

    def _open(self, inputs: list[InputFile]) -> Session:
        session = open_session(
            self.agent.sandbox,
            inputs=[(f.name, f.data) for f in inputs],
            timeout=self.settings.timeout,
            guard=self.settings.guard,
            max_pixels=self.settings.max_pixels,
            libraries=self.agent.libraries,
            **self.agent.sandbox_options,
        )
        try:
            self._emit("sandbox", kind=session.kind)
        except BaseException:
            session.close()
            raise
        return session

    def _start_conversation(self, inputs: Inputs, notes: str = "") -> None:
        listing = [(f.name, len(f.data), inputs.notes.get(f.name, "")) for f in inputs.files]
        libraries = available_libraries(self.session)
        extras = [spec for spec in self.session.executor.extras if spec["name"] in libraries]
        tool = ToolSpec(TOOL_NAME, tool_description(listing, libraries, self.settings.timeout, extras))
        system = self.settings.system + (f"\n\n{notes}" if notes else "")
        self.conversation = self.agent.model.start(system, tool)

    # -- the loop -----------------------------------------------------------------

    def send(self, question: str, images: Iterable = (), files: Iterable = (), history: History = (),
             resumed: bool = False) -> AgentResult:
        """``history``: earlier turns to replay first (only to start a chat); the images of
        its user turns go into the sandbox too.  ``resumed``: the history is a conversation
        continued in a new sandbox; the model is told its earlier variables are gone."""
        if self._stopped.is_set():
            raise InputError("this chat was stopped; start a new one")
        if not question or not question.strip():
            raise InputError("the question is empty")
        history, images, files = list(history), list(images), list(files)
        s = self.settings
        if history and self.session is not None:
            raise InputError("a history can only start a chat")
        if self.session is None and self.agent.libraries:
            # Extras not set up or built: one line with the command, before any model call.
            check_libraries(self.agent.sandbox, self.agent.libraries, self.agent.sandbox_options.get("docker_host"))
        self.agent.model.check_ready()  # no API key, no API: fail before a sandbox starts
        past = [source for entry in history if isinstance(entry, PastUser) for source in entry.images]
        past_inputs = self._prepare(past, [])  # the replayed turns' images go into the sandbox too
        inputs = self._prepare(images, files)
        shown = {p.name for p in inputs.images}
        for note in past_inputs.skipped + inputs.skipped:
            self._emit("skipped", message=note)
        everything = Inputs(past_inputs.images + inputs.images, past_inputs.files + inputs.files,
                            {**past_inputs.notes, **inputs.notes})
        names = [f.name for f in everything.files]
        if len(set(names)) != len(names):
            raise InputError("two inputs share a file name; rename one")
        started = time.perf_counter()
        timings = Timings()
        text = question
        sources = [*images, *files]
        remembered = self.recorder.memories_for(question, names, sources)
        notes = self.recorder.section(remembered)
        if self.session is None:
            t = time.perf_counter()
            self.session = self._open(everything.files)
            timings.sandbox_start_s, timings.cold_start = time.perf_counter() - t, self.session.started_cold
            self._start_conversation(everything, notes)
            timings.sandbox_s += time.perf_counter() - t
            self._replay(history, iter(past_inputs.images))
        else:
            if inputs.files:
                self.session.add_inputs([(f.name, f.data) for f in inputs.files])
                text = f"{question}\n\n(New files in the working directory: {', '.join(f.name for f in inputs.files)}.)"
            if notes:  # corrections that fit this turn and were not given at the start
                text += f"\n\n{notes}"
        if inputs.messages:
            text += "\n\n" + "\n".join(f"({m})" for m in inputs.messages)
        if resumed:
            text += f"\n\n({RESUMED})"
        self.conversation.add_user(text, [p.model for p in inputs.images])
        result = AgentResult(
            question=question, answer=None, stop_reason=StopReason.ANSWERED, model=self.agent.model.name,
            sandbox=self.session.kind, timings=timings, inputs=[p.model for p in inputs.images],
            files=[f.name for f in inputs.files if f.name not in shown],
            memory_used=[{"id": item.id, "text": item.text} for item in remembered],
            skipped=past_inputs.skipped + inputs.skipped,
            input_sizes={p.name: (p.width, p.height) for p in inputs.images},
        )
        result.run_id = self.recorder.begin(
            model=self.agent.model.name, question=question, files=inputs.files,
            shown={p.name: p.model for p in inputs.images}, sources=sources,
            settings={"sandbox": self.session.kind, "guard": s.guard, "timeout": s.timeout,
                      "max_steps": s.max_steps, "show_images": s.show_images, "tags": list(s.tags)})
        self._running: Step | None = None
        try:
            self._loop(result)
        except (KeyboardInterrupt, ChatStopped):
            # Ctrl-C or stop(): the result so far stays in self.results, marked, with the
            # run that was going on (a trace of it can still be written).
            result.stop_reason = StopReason.INTERRUPTED
            if self._running is not None and result.turns:
                if not self._running.duration_s:
                    self._running.duration_s = time.perf_counter() - self._running_since
                result.turns[-1].steps.append(self._running)
            raise
        finally:
            timings.wall_s = time.perf_counter() - started
            self.results.append(result)
            self.recorder.end(result.run_id, result, result.memory_used)
        self._emit("done", result=result)
        return result

    def _replay(self, history: History, images) -> None:
        for entry in history:
            if isinstance(entry, PastUser):
                self.conversation.add_user(entry.text, [next(images).model for _ in entry.images])
            elif isinstance(entry, ModelTurn):
                self.conversation.add_model(entry)
            elif isinstance(entry, PastObservations):
                self.conversation.add_observations(entry.observations)
            else:
                raise TypeError(f"not a history entry: {entry!r}")

    def _loop(self, result: AgentResult) -> None:
        s = self.settings
        failures = 0
        code_turns = 0
        forced: StopReason | None = None
        while True:
            if s.max_context_images >= 0:
                self.conversation.prune_images(s.max_context_images)
            t = time.perf_counter()
            self._emit("thinking", number=len(result.turns) + 1)
            try:
                streaming = {"on_text": self._on_text} if s.stream else {}
                turn = self.conversation.generate(allow_tools=forced is None, **streaming)
            except ModelError as exc:
                result.timings.model_s += time.perf_counter() - t
                result.stop_reason, result.error = StopReason.MODEL_ERROR, str(exc)
                self._emit("model_error", message=str(exc), exception=exc)
                return
            result.timings.model_s += time.perf_counter() - t
            log.info("%s answered in %.2f s: %d code call(s), %d prompt tokens", self.agent.model.name,
                     time.perf_counter() - t, len(turn.calls), turn.usage.prompt_tokens)
            result.usage = result.usage + turn.usage
            record = Turn(thoughts=turn.thoughts, text=turn.text)
            result.turns.append(record)
            self._emit("model", thoughts=turn.thoughts, text=turn.text, calls=len(turn.calls), turn=turn)
            if not turn.calls or forced is not None:
                if turn.calls:  # keep the history well-formed for a next chat turn
                    self.conversation.add_observations(
                        [Observation(c, Outcome.FAILED, "not run: no more code will run") for c in turn.calls]
                    )
                result.answer = turn.text or None
                result.stop_reason = forced or StopReason.ANSWERED
                return
            code_turns += 1
            observations = []
            for call in turn.calls:
                step, observation = self._execute(call, len(result.steps) + len(record.steps) + 1)
                record.steps.append(step)
                result.timings.sandbox_s += step.duration_s
                observations.append(observation)
                failures = failures + 1 if step.outcome != Outcome.OK else 0
            if failures > s.max_retries:
                forced = StopReason.RETRIES_EXHAUSTED
                record.note = NO_MORE_CODE.format(why=f"{failures} runs in a row failed")
            elif code_turns >= s.max_steps:
                forced = StopReason.MAX_STEPS
                record.note = NO_MORE_CODE.format(why=f"the limit of {s.max_steps} steps is reached")
            self.conversation.add_observations(observations, note=record.note or None)

    def _on_text(self, text: str, thought: bool) -> None:
        self._emit("text", text=text, thought=thought)

    def _execute(self, call, number: int) -> tuple[Step, Observation]:
        if call.error:
            step = Step(code=call.code, outcome=Outcome.FAILED, output=call.error)
            self._emit("step", number=number, step=step, call=call)
            return step, Observation(call, Outcome.FAILED, call.error)
        self._emit("code", number=number, code=call.code, call=call)
        self._running = Step(call.code, Outcome.FAILED, INTERRUPTED_NOTE)
        self._running_since = time.perf_counter()
        on_output = None
        if self.agent.on_event is not None:
            def on_output(stream: str, text: str) -> None:
                self._emit("output", number=number, stream=stream, text=text)
        try:
            execution = self.session.run(call.code, on_output=on_output)
        except RunInterrupted as exc:  # keep what the run had printed, and how long it had run
            so_far = exc.execution.output
            if so_far and not so_far.endswith("\n"):
                so_far += "\n"
            self._running = Step(call.code, Outcome.FAILED, so_far + INTERRUPTED_NOTE, [], exc.execution.duration_s)
            raise
        self._running = None
        step = Step(call.code, execution.outcome, execution.output, execution.images, execution.duration_s,
                    execution.error)
        self._emit("step", number=number, step=step, call=call)
        output = execution.output
        images: list[ModelImage] = []
        if self.settings.show_images:
            for j, image in enumerate(execution.images, 1):
                try:
                    images.append(to_model_image(image, self.settings.max_image_side, label=f"step {number} image {j}"))
                except (ValueError, OSError) as exc:  # checked bytes that still do not decode
                    output += f"\n[image {j} could not be shown: {exc}]"
        elif execution.images:
            output += f"\n[{len(execution.images)} image(s) were produced but are not shown in this mode]"
        return step, Observation(call, execution.outcome, output, images)
