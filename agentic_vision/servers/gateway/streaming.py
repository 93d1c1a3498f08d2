"""Driving an Exchange from the event loop: a worker thread, a disconnect watch,
and the answer as one JSON body or as server-sent events.

The HTTP status is sent with the first chunk, so a request that fails before
anything happened (a refused key, an unknown model) still gets its error
status; a failure later in a stream is a last ``data: {"error": ...}`` event,
which both SDKs raise.  The final chunk carries the answer and
``finishReason``, as real streams do (a last chunk without content would make
the SDKs' chats drop the whole turn).
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

    def body(self, parts: list[dict], usage: dict, finish_reason: str | None = None) -> dict:
        return response_body(parts, response_id=self.exchange.response_id, model_version=self.model_version,
                             usage=usage, finish_reason=finish_reason)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self._serve(receive, send)
        finally:
            self.done()

    async def _serve(self, receive, send) -> None:
        exchange = self.exchange
        chunks_in, chunks = anyio.create_memory_object_stream(math.inf)
        if self.stream:
            exchange.on_parts = lambda parts, usage: anyio.from_thread.run_sync(
                chunks_in.send_nowait, self.body(parts, usage))
        started = False

        async def work() -> None:
            with chunks_in:
                await anyio.to_thread.run_sync(exchange.run, limiter=self.limiter, abandon_on_cancel=True)

        async def watch(scope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            exchange.cancel()  # the client went away: stop the sandbox and the loop
            scope.cancel()

        async def start(status: int, headers: list) -> None:
            nonlocal started
            started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(work)
                group.start_soon(watch, group.cancel_scope)
                async with chunks:
                    async for chunk in chunks:
                        if not started:
                            await start(200, SSE_HEADERS)
                        await send({"type": "http.response.body", "body": sse_event(chunk), "more_body": True})
                group.cancel_scope.cancel()  # the loop ended: stop watching
        except BaseException:
            exchange.cancel()  # e.g. the connection broke while sending
            raise
        if exchange.cancelled:
            return
        usage = exchange.usage.metadata()
        if exchange.error is not None:
            if started:
                await send({"type": "http.response.body", "body": sse_event(exchange.error.payload())})
            else:
                await start(exchange.error.code, JSON_HEADERS)
                await send({"type": "http.response.body", "body": json.dumps(exchange.error.payload()).encode()})
            return
        if self.stream:
            last = self.body(exchange.final or [{"text": ""}], usage, "STOP")
            if not started:
                await start(200, SSE_HEADERS)
            await send({"type": "http.response.body", "body": sse_event(last)})
        else:
            whole = self.body(exchange.parts + exchange.final, usage, "STOP")
            await start(200, JSON_HEADERS)
            await send({"type": "http.response.body", "body": json.dumps(whole).encode()})
