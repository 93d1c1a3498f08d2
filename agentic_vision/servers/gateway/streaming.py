"""Driving an Exchange from the event loop: a worker thread, a disconnect watch,
and the answer as one JSON body or as server-sent events.

The HTTP status is sent with the first chunk, so a request that fails before
anything happened (a refused key, an unknown model) still gets its error
status; a failure later in a stream is a last ``data: {"error": ...}`` event,
which both SDKs raise.  The final chunk carries the answer and
``finishReason``, as real streams do (a last chunk without content would make
the SDKs' chats drop the whole turn).  The answer goes out as soon as the loop
has it; the sandbox is closed after that, still inside the request's
concurrency slot.
"""

from __future__ import annotations

import json
import math
from typing import Callable

import anyio
import anyio.from_thread
import anyio.to_thread

from .exchange import Exchange
from .wire import response_body, sse_event

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
JSON_HEADERS = [(b"content-type", b"application/json; charset=UTF-8")]
_FINISHED = object()


class ExchangeResponse:
    """An ASGI response that runs ``exchange`` in a thread of ``limiter``; ``done`` is
    called once, however it ends (it frees the request's concurrency slot)."""

    def __init__(self, exchange: Exchange, *, stream: bool, model_version: str,
                 limiter: anyio.CapacityLimiter, done: Callable[[], None]) -> None:
        self.exchange = exchange
        self.stream = stream
        self.model_version = model_version
        self.limiter = limiter
        self.done = done
        self.started = False

    def body(self, parts: list[dict], usage: dict, finish_reason: str | None = None) -> dict:
        return response_body(parts, response_id=self.exchange.response_id, model_version=self.model_version,
                             usage=usage, finish_reason=finish_reason)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self._serve(receive, send)
        finally:
            self.exchange.forget()  # the callbacks above refer back to this response: a cycle
            self.done()

    async def _serve(self, receive, send) -> None:
        exchange = self.exchange
        items_in, items = anyio.create_memory_object_stream(math.inf)
        if self.stream:
            exchange.on_parts = lambda parts, usage: anyio.from_thread.run_sync(
                items_in.send_nowait, self.body(parts, usage))
        exchange.on_finished = lambda: anyio.from_thread.run_sync(items_in.send_nowait, _FINISHED)
        watching = anyio.CancelScope()

        async def work() -> None:
            with items_in:
                await anyio.to_thread.run_sync(exchange.run, limiter=self.limiter, abandon_on_cancel=True)

        async def watch(group_scope) -> None:
            with watching:
                while (await receive())["type"] != "http.disconnect":
                    pass
                exchange.cancel()  # the client went away: stop the sandbox and the loop
                group_scope.cancel()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(work)
                group.start_soon(watch, group.cancel_scope)
                async with items:
                    async for item in items:
                        if item is _FINISHED:
                            break
                        await self._start(send, 200, SSE_HEADERS)
                        await send({"type": "http.response.body", "body": sse_event(item), "more_body": True})
                    await self._answer(send)
                watching.cancel()  # answered: a disconnect now changes nothing; the sandbox closes
        except BaseException:
            exchange.cancel()  # e.g. the connection broke while sending
            raise

    async def _start(self, send, status: int, headers: list) -> None:
        if not self.started:
            self.started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})

    async def _answer(self, send) -> None:
        exchange = self.exchange
        if exchange.cancelled:
            return
        if exchange.error is not None:
            if self.started:
                await send({"type": "http.response.body", "body": sse_event(exchange.error.payload())})
            else:
                await self._start(send, exchange.error.code, JSON_HEADERS)
                await send({"type": "http.response.body", "body": json.dumps(exchange.error.payload()).encode()})
            return
        usage = exchange.usage.metadata()
        if self.stream:
            await self._start(send, 200, SSE_HEADERS)
            last = self.body(exchange.final or [{"text": ""}], usage, "STOP")
            await send({"type": "http.response.body", "body": sse_event(last)})
        else:
            whole = self.body(exchange.parts + exchange.final, usage, "STOP")
            await self._start(send, 200, JSON_HEADERS)
            await send({"type": "http.response.body", "body": json.dumps(whole).encode()})
