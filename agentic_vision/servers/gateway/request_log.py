"""One log line per request: method, path, model, status, duration, and for
code-execution requests the loop's steps and sandbox time.

An ASGI middleware on the app (so it sees the status the client got and
the time until the last byte); handlers leave the request's ``Exchange`` in
``request.state.exchange``.  Lines go to the ``agentic_vision.gateway.requests``
logger at INFO; ``agentic-vision serve`` writes them as text or, with
``--log-format json``, one JSON object each.  The query string is never
logged (it may hold an API key).
"""

from __future__ import annotations

import json
import logging
import re
import time

LOGGER = "agentic_vision.gateway.requests"
_MODEL = re.compile(r"/models/(?P<model>[^/:]+)(?::(?P<method>[A-Za-z]+))?$")
log = logging.getLogger(LOGGER)


class RequestLog:
    """ASGI middleware: logs each HTTP request once it is answered (or the client went away)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = {"code": 0}

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra={"request": describe(scope, state, status["code"],
                                                               time.perf_counter() - started)})


def describe(scope, state: dict, status: int, duration: float) -> dict:
    path = scope.get("path", "")
    found = _MODEL.search(path)
    entry = {"method": scope.get("method"), "path": path, "status": status or 499,
             "model": found["model"] if found else None, "duration_s": round(duration, 3)}
    exchange = state.get("exchange")
    if exchange is not None:  # code execution ran here
        result = exchange.result
        entry["code_execution"] = True
        entry["backend"] = exchange.model.name
        entry["steps"] = len(result.steps) if result is not None else None
        entry["sandbox_s"] = round(result.timings.sandbox_s, 3) if result is not None else None
        entry["stop_reason"] = str(result.stop_reason) if result is not None else None
    return entry


class TextFormatter(logging.Formatter):
    """``2026-07-01 12:00:00 POST /v1beta/models/m:generateContent 200 1.23s model=m steps=2 sandbox=0.41s``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = getattr(record, "request", None)
        if entry is None:
            return super().format(record)
        line = f"{self.formatTime(record)} {entry['method']} {entry['path']} {entry['status']} {entry['duration_s']:.2f}s"
        if entry.get("model"):
            line += f" model={entry['model']}"
        if entry.get("code_execution"):
            line += f" backend={entry['backend']} steps={entry['steps']} sandbox={entry['sandbox_s']}s"
            line += f" stop={entry['stop_reason']}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the request's fields, the time and the level; other records as messages."""

    def format(self, record: logging.LogRecord) -> str:
        entry = getattr(record, "request", None) or {"message": record.getMessage(), "logger": record.name}
        return json.dumps({"time": self.formatTime(record), "level": record.levelname, **entry})


def configure(fmt: str, stream, level: int = logging.INFO) -> None:
    """Request lines (``fmt`` "text" or "json") to ``stream``, apart from the other logging."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
