"""The asyncio face of the library: the same sessions and loop, run in worker threads.

    from agentic_vision import aio

    async with aio.open_session("local", inputs=["photo.jpg"]) as session:
        result = await session.run(code, on_output=lambda stream, text: print(text, end=""))

    answer = await Agent(...).arun("How many coins?", images=["coins.png"])
    async with agent.achat() as chat:
        await chat.send("How wide is it?", images=["coins.png"])

The blocking work (the sandbox's channel, the model's HTTP requests) runs in
the default executor's threads, so the event loop stays free.  Cancellation
is real where it can be: a cancelled ``run`` kills the sandbox's run at once
(the session restarts before its next run, as after a timeout) and returns
only when it is dead; a cancelled ``send``/``arun`` does the same to a run in
progress, and a model request in flight is left to finish in its thread with
its answer discarded; the chat is then stopped and ``aclose`` waits for that
thread.  ``on_output`` callbacks are called on the event loop, in order,
before the run's result is returned.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Callable, Iterable

from .loop.agent import Agent, Chat, History
from .loop.result import AgentResult
from .sandboxing.session import DEFAULT_TIMEOUT, InputSpec, Session
from .sandboxing.session import open_session as _open_session
from .values import Execution

__all__ = ["AsyncChat", "AsyncSession", "open_session"]


def _discard_outcome(future: asyncio.Future) -> None:
    # A thread left to finish after a cancel: its result or error has no reader.
    if not future.cancelled():
        future.exception()


class AsyncSession:
    """A ``Session`` for asyncio; one run at a time (concurrent calls wait their turn)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._turn = asyncio.Lock()

    @property
    def kind(self) -> str:
        return self.session.kind

    async def run(self, code: str, timeout: float | None = None, *,
                  on_output: Callable[[str, str], None] | None = None) -> Execution:
        loop = asyncio.get_running_loop()
        relay = None
        if on_output is not None:
            def relay(stream: str, text: str) -> None:
                loop.call_soon_threadsafe(on_output, stream, text)
        async with self._turn:
            future = loop.run_in_executor(None, functools.partial(self.session.run, code, timeout, on_output=relay))
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                self.session.interrupt()  # kills the run; the thread returns at once
                await asyncio.wait([future])
                _discard_outcome(future)
                raise

    async def add_inputs(self, inputs: Iterable[InputSpec]):
        async with self._turn:
            return await asyncio.to_thread(self.session.add_inputs, inputs)

    async def close(self) -> None:
        self.session.interrupt()
        await asyncio.to_thread(self.session.close)

    async def __aenter__(self) -> "AsyncSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class _Opening:
    """What ``open_session`` returns: await it, or use it with ``async with``."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        self._args, self._kwargs = args, kwargs
        self._session: AsyncSession | None = None

    async def _open(self) -> AsyncSession:
        future = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(_open_session, *self._args, **self._kwargs))
        try:
            return AsyncSession(await asyncio.shield(future))
        except asyncio.CancelledError:
            # The sandbox may still come up in its thread: close it when it does.
            future.add_done_callback(lambda f: f.cancelled() or f.exception() or f.result().close())
            raise

    def __await__(self):
        return self._open().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._open()
        return self._session

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()


def open_session(sandbox: str = "local", inputs: Iterable[InputSpec] = (), timeout: float = DEFAULT_TIMEOUT,
                 **options) -> _Opening:
    """``agentic_vision.open_session`` for asyncio: ``session = await open_session(...)`` or
    ``async with open_session(...) as session``; the same arguments."""
    return _Opening((sandbox, inputs, timeout), options)


class AsyncChat:
    """``Chat`` for asyncio (``Agent.achat()``); one ``send`` at a time."""

    def __init__(self, agent: Agent) -> None:
        self.chat = Chat(agent)
        self._turn = asyncio.Lock()
        self._thread: asyncio.Future | None = None  # the last send's thread

    @property
    def results(self) -> list[AgentResult]:
        return self.chat.results

    async def send(self, question: str, images: Iterable = (), files: Iterable = (),
                   history: History = ()) -> AgentResult:
        async with self._turn:
            call = functools.partial(self.chat.send, question, images=images, files=files, history=history)
            self._thread = asyncio.get_running_loop().run_in_executor(None, call)
            try:
                return await asyncio.shield(self._thread)
            except asyncio.CancelledError:
                self.chat.stop()
                self._thread.add_done_callback(_discard_outcome)
                raise

    async def aclose(self) -> None:
        """Ends the sandbox; after a cancelled send, first waits for its thread to end."""
        if self._thread is not None and not self._thread.done():
            self.chat.stop()
            await asyncio.wait([self._thread])
        await asyncio.to_thread(self.chat.close)

    async def __aenter__(self) -> "AsyncChat":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
