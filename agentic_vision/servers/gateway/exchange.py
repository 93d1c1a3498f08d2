"""One code-execution request: the loop in a worker thread, its events as hosted parts.

The loop is synchronous; its event callback turns each event into response
parts as they happen (text as upstream streams it, the code before it runs,
its result and images after) and hands them to ``on_parts``, which the
streaming response sends on.  Without streaming, a model turn's thoughts and
text come when the turn does, and the answer is kept back for the end; the
last chunk must carry content together with ``finishReason`` (when the words
were streamed, an empty text part with the answer's signature).
``cancel()`` (the client went away) stops the sandbox at once and the loop
at its next event; a PDF being rendered for the request is killed at once.
"""

from __future__ import annotations

import secrets
import threading
from typing import Callable

from ...errors import AgenticVisionError, InputError
from ...loop.agent import Agent
from ...loop.prompt import SYSTEM
from ...models.base import Model
from ...values import StopReason
from .errors import GatewayError, bad_request
from .history import Request
from .wire import UsageTotals, code_part, image_part, result_part, text_part


class Cancelled(Exception):
    """The client went away; raised inside the loop to end it."""


def upstream_error(exc: BaseException | None, message: str) -> GatewayError:
    """A model API failure, with the upstream's status where it gave one."""
    cause = exc.__cause__ if exc is not None else None
    code = getattr(cause, "code", None) or getattr(cause, "status_code", None)
    if isinstance(code, int) and 400 <= code < 600:
        status = getattr(cause, "status", None)
        return GatewayError(code, message, status if isinstance(status, str) and status.isupper() else None)
    return GatewayError(502, message)


class Exchange:
    def __init__(self, model: Model, request: Request, *, sandbox: str, settings: dict, system: str = "",
                 sandbox_options: dict | None = None, include_thoughts: bool = False, stream: bool = False) -> None:
        self.model = model
        self.request = request
        self.sandbox = sandbox
        self.sandbox_options = dict(sandbox_options or {})
        self.settings = dict(settings, system=f"{SYSTEM}\n\n{system}" if system.strip() else SYSTEM, stream=stream)
        self.include_thoughts = include_thoughts
        # Set by the response: on_parts(parts, usage) as parts come (streaming); on_finished() once
        # the answer is complete, before the sandbox is closed (which takes a moment).
        self.on_parts: Callable[[list[dict], dict], None] | None = None
        self.on_finished: Callable[[], None] | None = None
        self.response_id = secrets.token_urlsafe(12)
        self.parts: list[dict] = []  # everything sent so far, in order
        self.final: list[dict] = []  # the answer, for the last chunk
        self.usage = UsageTotals()
        self.error: GatewayError | None = None
        self.result = None  # the loop's AgentResult, once it ended (for the request's log line)
        self._ids: dict[int, str] = {}
        self._cancelled = threading.Event()
        self._chat = None
        self._streamed = False  # the current model turn's words went out as they came

    # -- in the worker thread -------------------------------------------------------------

    def run(self) -> None:
        """Runs the loop to its end; failures are kept in ``self.error``, never raised."""
        chat = None
        try:
            # A client's runs are theirs: never kept in the operator's run log, never given its memory.
            agent = Agent(self.model, self.sandbox, on_event=self._event, sandbox_options=self.sandbox_options,
                          stop=self._cancelled, log=False, memory=False, **self.settings)
            chat = self._chat = agent.chat()
            result = self.result = chat.send(self.request.question, images=self.request.images, files=self.request.files,
                               history=self.request.history)
            if result.stop_reason == StopReason.MODEL_ERROR and self.error is None:
                self.error = GatewayError(502, result.error or "the model API failed")
            elif not self.final:  # the last turn asked for code that was not run: its words went out
                self.final = [text_part("")]
        except Cancelled:
            self.error = GatewayError(499, "the client went away; the run was stopped.")
        except InputError as exc:
            self.error = bad_request(str(exc))
        except AgenticVisionError as exc:  # the sandbox could not start, and the like
            self.error = GatewayError(503, str(exc))
        except Exception as exc:  # a bug: answer it, keep serving
            self.error = GatewayError(500, f"internal error in the gateway: {type(exc).__name__}: {exc}")
        finally:
            self._finish(chat)

    def _finish(self, chat) -> None:
        if self.result is None and chat is not None and chat.results:
            self.result = chat.results[-1]  # ended early: what ran until then
        try:
            if self.on_finished is not None:
                self.on_finished()  # the response can go out now
        except Exception:
            pass  # the response is gone (cancelled): nothing to tell
        finally:
            if chat is not None:
                chat.close()
            self._chat = None
        self._streamed = False  # the current model turn's words went out as they came

    def _send(self, parts: list[dict]) -> None:
        self.parts += parts
        if self.on_parts is not None and parts:
            try:
                self.on_parts(parts, self.usage.metadata())
            except Exception:
                if self._cancelled.is_set():  # the response is gone
                    raise Cancelled() from None
                raise

    def _call_id(self, call) -> str:
        key = id(call)
        if key not in self._ids:
            self._ids[key] = call.id or f"av-{secrets.token_hex(4)}"
        return self._ids[key]

    def _event(self, event: str, data: dict) -> None:
        if self._cancelled.is_set():
            raise Cancelled()
        if event == "text":
            if self.include_thoughts or not data["thought"]:
                self._streamed = True
                self._send([text_part(data["text"], thought=data["thought"])])
        elif event == "model":
            turn = data["turn"]
            self.usage.add(turn.usage)
            streamed, self._streamed = self._streamed, False
            text = "" if streamed else turn.text
            parts = []
            if turn.thoughts and self.include_thoughts and not streamed:
                parts.append(text_part(turn.thoughts, thought=True))
            if not turn.calls:  # the answer: it goes out with finishReason in the last chunk
                self.final = [text_part(text, turn.signature)]
            elif text or (streamed and turn.signature):
                parts.append(text_part(text, turn.signature))
            self._send(parts)
        elif event == "code":
            call = data["call"]
            self._send([code_part(call.code, self._call_id(call), call.signature)])
        elif event == "step":
            call, step = data["call"], data["step"]
            if call.error:  # the model's call was unusable: nothing ran, nothing to show
                return
            parts = [result_part(step.outcome, step.output, self._call_id(call))]
            parts += [image_part(im.data, im.mime_type) for im in step.images]
            self._send(parts)
        elif event == "model_error":
            self.error = upstream_error(data.get("exception"), data["message"])

    # -- from the event loop --------------------------------------------------------------

    def forget(self) -> None:
        """Drops the callbacks and the request (its images and text) once the response is done,
        so that they go at once rather than when the cyclic garbage collector runs."""
        self.on_parts = self.on_finished = None
        self.request = Request()

    def cancel(self) -> None:
        self._cancelled.set()
        chat = self._chat
        if chat is not None and chat.session is not None:
            chat.session.interrupt()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()
