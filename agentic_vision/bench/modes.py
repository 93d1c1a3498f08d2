"""The four ways one task is put to the model.

* ``direct``: the model alone: one request with the images and the question,
  no tools.  Gemini goes through the GeminiModel's client; other backends
  through their Conversation with ``generate(allow_tools=False)``.
* ``hosted``: Gemini's own code execution (``Tool(code_execution=...)``,
  thinking on with thoughts included): one request, the response parts
  (``executable_code``, ``code_execution_result``, ``inline_data``, text) are
  read into the same record as the local loop's.  Gemini only.
* ``local``: our loop, ``Agent(model, sandbox)``.
* ``local-blind``: our loop with ``show_images=False``: code runs, but the
  model never sees the images it makes.

Every mode sends the same prompt (``Task.prompt()``).  Images go to the
model downscaled to the loop's ``max_image_side`` (as the loop sends them);
hosted code execution gets the full-resolution original when Gemini takes
its format (PNG, JPEG, WEBP, under 15 MB), since its code works on the bytes
in the request, as our sandbox works on the originals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from ..errors import InputError, ModelError
from ..images import MODEL_FORMATS, sniff_image
from ..inputs import prepare_image
from ..loop.agent import Agent
from ..loop.prompt import TOOL_NAME
from ..models.base import ToolSpec, Usage
from ..sandboxing.executors import check_docker_host, get_executor
from ..values import LOCAL_MODES, BenchMode, StopReason
from ..models.gemini import GeminiModel, no_answer_reason, read_hosted, response_parts, split_text, usage_of
from .tasks import Task

HOSTED_MAX_BYTES = 15 * 1024 * 1024
# Direct mode through a backend's Conversation (non-Gemini): a plain instruction, no tool talk.
DIRECT_SYSTEM = "Answer the user's question about the image(s)."


@dataclass
class Episode:
    """What one (task, mode) gave: everything the record and the trace need."""

    answer: str | None = None
    stop_reason: StopReason = StopReason.ANSWERED
    error: str | None = None
    thoughts: str = ""
    steps: list[dict] = field(default_factory=list)
    model_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    timings: dict = field(default_factory=dict)
    result: object = None  # the AgentResult of the local modes, for the trace


def is_gemini(model) -> bool:
    return isinstance(model, GeminiModel)


def available_modes(model, requested: list[str]) -> tuple[list[str], list[str]]:
    """(modes to run, notes about the ones skipped)."""
    modes, notes = [], []
    for mode in requested:
        if mode == BenchMode.HOSTED and not is_gemini(model):
            notes.append(f"hosted: skipped, hosted code execution is Gemini's own and {model.name} is not a "
                         "Gemini model")
            continue
        modes.append(mode)
    return modes, notes


def _finish(episode: Episode) -> Episode:
    if episode.stop_reason == StopReason.ANSWERED and not (episode.answer or "").strip():
        episode.stop_reason, episode.answer = StopReason.NO_ANSWER, None
    return episode


class ModeRunner:
    """Runs one task in one mode; thread-safe (one model shared by all workers)."""

    def __init__(self, model, sandbox: str = "auto", docker_host: str | None = None, libraries=(), *,
                 pool_size: int = 2, **settings) -> None:
        """``docker_host``: the Docker sandbox's engine (default: DOCKER_HOST, the context, the socket);
        ``libraries``: extra requirements the local modes' sandbox has (set up / built beforehand);
        ``pool_size``: warm sandboxes kept ready (the concurrency and one more, so that no episode
        waits for a sandbox to start)."""
        check_docker_host(sandbox, docker_host)
        settings["libraries"] = self.libraries = libraries
        self.model = model
        self.sandbox = sandbox
        self.docker_host = docker_host
        self.pool_size = pool_size
        self._warm_lock = threading.Lock()
        self._warmed = False
        # Fail now (no API key) rather than once per task; the client it makes is shared by
        # every worker thread (GeminiModel makes it once, under a lock).
        model.check_ready()
        self.max_image_side = settings.get("max_image_side", 1536)
        settings["sandbox_options"] = {**(settings.get("sandbox_options") or {}), "docker_host": docker_host,
                                       "pool_size": pool_size}
        # A benchmark keeps its own records, and must not learn from its own answers: no run
        # log, and memory only when asked for (bench --memory).
        settings.setdefault("log", False)
        settings.setdefault("memory", False)
        self.agents = {
            BenchMode.LOCAL: Agent(model=model, sandbox=sandbox, **settings),
            BenchMode.LOCAL_BLIND: Agent(model=model, sandbox=sandbox, **{**settings, "show_images": False}),
        }

    def warm_sandbox(self) -> float:
        """Fills the local modes' warm pool before any episode is timed, so the first ones do
        not pay for starting sandboxes; the seconds it took (reported apart)."""
        started = time.perf_counter()
        get_executor(self.sandbox, pool_size=self.pool_size, docker_host=self.docker_host,
                     libraries=self.libraries).warm()
        self._warmed = True
        return time.perf_counter() - started

    def ensure_warm(self) -> None:
        """``warm_sandbox`` once for this runner (a Ray worker's, before its first local episode)."""
        with self._warm_lock:
            if not self._warmed:
                self.warm_sandbox()

    def run(self, mode: str, task: Task) -> Episode:
        started = time.perf_counter()
        try:
            if mode == BenchMode.DIRECT:
                episode = self.direct(task)
            elif mode == BenchMode.HOSTED:
                episode = self.hosted(task)
            elif mode in LOCAL_MODES:
                episode = self.local(mode, task)
            else:
                raise ValueError(f"unknown mode {mode!r}")
        except ModelError as exc:
            episode = Episode(stop_reason=StopReason.MODEL_ERROR, error=str(exc), model_calls=1)
        except InputError as exc:
            episode = Episode(stop_reason=StopReason.INPUT_ERROR, error=str(exc))
        episode.timings.setdefault("wall_s", round(time.perf_counter() - started, 3))
        return _finish(episode)

    # -- direct ---------------------------------------------------------------------

    def _prepared(self, task: Task):
        return [prepare_image(path, max_side=self.max_image_side) for path in task.images]

    def direct(self, task: Task) -> Episode:
        prepared = self._prepared(task)
        t = time.perf_counter()
        if is_gemini(self.model):
            # Labelled with the original's size, as in the hosted mode.
            images = [replace(p.model, label=p.name, width=p.width, height=p.height) for p in prepared]
            response = self.model.ask_once(task.prompt(), images)
            answer, thoughts = split_text(response_parts(response))
            episode = Episode(answer=answer or None, thoughts=thoughts, model_calls=1, usage=usage_of(response))
            if episode.answer is None:
                episode.error = no_answer_reason(response)
        else:
            conversation = self.model.start(DIRECT_SYSTEM, ToolSpec(TOOL_NAME, "Runs Python code (not available now)."))
            conversation.add_user(task.prompt(), [p.model for p in prepared])
            turn = conversation.generate(allow_tools=False)
            episode = Episode(answer=turn.text or None, thoughts=turn.thoughts, model_calls=1, usage=turn.usage)
        episode.timings = {"model_s": round(time.perf_counter() - t, 3)}
        return episode

    # -- hosted ---------------------------------------------------------------------

    def hosted(self, task: Task) -> Episode:
        if not is_gemini(self.model):
            raise InputError("hosted code execution needs a Gemini model")
        images = []
        for p in self._prepared(task):
            image = replace(p.model, label=p.name, width=p.width, height=p.height)
            original = sniff_image(p.sandbox_data)
            # MODEL_FORMATS (PNG, JPEG, WEBP) are the ones hosted code execution takes as they are.
            if original in MODEL_FORMATS and len(p.sandbox_data) <= HOSTED_MAX_BYTES:
                image = replace(image, data=p.sandbox_data, mime_type=original)
            images.append(image)
        t = time.perf_counter()
        response = self.model.ask_once(task.prompt(), images, code_execution=True)
        turn = read_hosted(response)
        episode = Episode(answer=turn.answer, thoughts=turn.thoughts, steps=turn.steps, model_calls=1,
                          usage=usage_of(response))
        if episode.answer is None:
            episode.error = no_answer_reason(response)
        episode.timings = {"model_s": round(time.perf_counter() - t, 3)}
        return episode

    # -- local ----------------------------------------------------------------------

    def local(self, mode: str, task: Task) -> Episode:
        result = self.agents[mode].run(task.prompt(), images=list(task.images))
        data = result.as_dict()
        calls = len(result.turns) + (1 if result.stop_reason == StopReason.MODEL_ERROR else 0)
        return Episode(answer=result.answer, stop_reason=result.stop_reason, error=result.error,
                       thoughts="\n".join(t.thoughts for t in result.turns if t.thoughts),
                       steps=data["steps"], model_calls=calls, usage=result.usage, timings=data["timings"],
                       result=result)
