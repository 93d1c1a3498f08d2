"""What the scripted test servers share, whatever API they imitate.

:class:`ScriptedServer` is a JSON-over-HTTP server on a local port, run in a
background thread, that answers each accepted request with the next *step* of
a script (or whatever a router picks for the request) and records every
request it saw.  ``gemini_server.ScriptedGemini`` and
``openai_server.ScriptedOpenAI`` build on it and keep their protocol to
themselves: URL routing, validation, how a step becomes a response body, and
the shape of an error payload.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple

__all__ = ["AUTO", "ApiError", "Image", "RecordedRequestBase", "ScriptedServer", "question_router", "tokens"]


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()  # "let the server fill this in" (call ids, thought signatures)


def tokens(text: str) -> int:
    """The deterministic token count the servers report for a text: ceil(chars / 4)."""
    return (len(text) + 3) // 4


class Image(NamedTuple):
    """An image found in a recorded request, decoded."""

    mime_type: str
    data: bytes
    where: str  # its place in the body, e.g. "messages[3].content[1]"


class ApiError(Exception):
    """An error reply.  Raised anywhere while a request is served, it becomes the
    response: HTTP ``code``, ``payload()`` as the body, ``headers`` added.
    Each protocol subclasses it to shape the payload as its API does."""

    def __init__(self, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.headers = headers or {}

    def payload(self) -> dict:
        raise NotImplementedError


class RecordedRequestBase:
    """Helpers for a protocol's ``RecordedRequest`` dataclass, which has ``body``
    (the parsed JSON, or None), ``status`` and ``response`` (the JSON sent back)."""

    def __getitem__(self, key: str) -> Any:
        return (self.body or {})[key]  # type: ignore[attr-defined]

    @property
    def error(self) -> str | None:
        """The error message the server answered with, if it refused the request."""
        return self.response["error"]["message"] if self.status >= 400 else None  # type: ignore[attr-defined]


def question_router(scripts: dict[str, list], *, turns: Callable[[Any], int], turn_word: str,
                    fail: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A router: the script whose key equals (or, longest first, occurs in) the
    request's first user text; the step is ``script[turns(request)]``, the number of
    model turns in the history.  Being stateless, it serves concurrent and repeated
    conversations alike.  ``fail(message)`` makes the error step when nothing fits;
    ``turn_word`` names the turns in that message ("model turns")."""
    def route(request: Any) -> Any:
        text = request.first_user_text()
        key = text if text in scripts else max((q for q in scripts if q in text), key=len, default=None)
        if key is None:
            return fail(f"no script for question {text[:80]!r}")
        step, script = turns(request), scripts[key]
        if step >= len(script):
            return fail(f"script exhausted for question {key[:80]!r} "
                        f"({len(script)} steps, request has {step} {turn_word})")
        return script[step]
    return route


class _Handler(BaseHTTPRequestHandler):
    # Every request goes to the owning ScriptedServer, which routes by method and path itself.
    def do_POST(self) -> None:
        self.server.owner._handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass  # tests read server.requests; stderr lines would only be noise


class ScriptedServer:
    """The shared server.  A subclass sets the class attributes and implements
    ``_record`` and ``_serve`` (and ``_respond`` if its replies are not plain JSON)."""

    name = "ScriptedServer"  # the Server header, the thread name, the prefix of script-problem messages
    request_kind = "request"  # what a request is called in "script exhausted" messages
    error_type: type[ApiError] = ApiError
    reply_type: type = object  # what a resolved step must be
    text_reply: Callable[[str], Any]  # a str step -> the reply it stands for (a staticmethod)

    def __init__(self, script: list | tuple = (), *, router: Callable[[Any], Any] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        if script and router:
            raise ValueError("pass a script or a router, not both")
        self.script, self.router = list(script), router
        self.requests: list = []
        self._cursor = self._served = 0
        self._lock = threading.Lock()
        handler = type("_Handler", (_Handler,), {"server_version": f"{self.name}/1.0"})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    @property
    def address(self) -> str:
        """``host:port`` (e.g. for ``OLLAMA_HOST``)."""
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- helpers for tests ---------------------------------------------------------
    @property
    def remaining(self) -> int:
        """Script steps not yet consumed."""
        return len(self.script) - self._cursor

    def images_in_request(self, request: int = -1) -> list[Image]:
        return self.requests[request].images()

    # -- HTTP ----------------------------------------------------------------------
    def _record(self, h: BaseHTTPRequestHandler) -> Any:
        """The protocol's RecordedRequest for ``h``, made before anything can fail."""
        raise NotImplementedError

    def _serve(self, h: BaseHTTPRequestHandler, rec: Any, raw: bytes) -> None:
        """Route, validate and answer: set ``rec.status`` and ``rec.response``, or raise ApiError."""
        raise NotImplementedError

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        rec = self._record(h)
        headers: dict = {}
        try:
            self._serve(h, rec, raw)
        except ApiError as e:
            rec.status, rec.response, headers = e.code, e.payload(), dict(e.headers)
        except Exception as e:  # e.g. a script step that raised: say so instead of dropping the connection
            rec.status, rec.response = 500, self._script_error(f"unexpected error: {e!r}").payload()
        with self._lock:
            self._log(rec)
        self._respond(h, rec, headers)

    def _log(self, rec: Any) -> None:
        """Keep the record (under the lock) where tests look for it."""
        self.requests.append(rec)

    def _respond(self, h: BaseHTTPRequestHandler, rec: Any, headers: dict) -> None:
        self._send(h, rec.status, json.dumps(rec.response).encode(), "application/json", headers)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str,
              headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def _read_json(self, rec: Any, raw: bytes, not_json: str, not_object: str) -> dict:
        """Parse the body (empty: ``{}``) into ``rec.raw``, kept even when it is not an
        object; 400 with the API's wording unless it is a JSON object."""
        try:
            rec.raw = json.loads(raw or b"{}")
        except ValueError:
            raise self.error_type(400, not_json) from None
        if not isinstance(rec.raw, dict):
            raise self.error_type(400, not_object)
        return rec.raw

    # -- the script ----------------------------------------------------------------
    def _script_error(self, message: str) -> ApiError:
        """A 500 naming the server, so a broken script reads differently from a refused request."""
        return self.error_type(500, f"{self.name}: {message}")

    def _next_step(self, rec: Any) -> Any:
        if self.router is not None:
            return self.router(rec)
        with self._lock:
            if self._cursor >= len(self.script):
                raise self._script_error(f"script exhausted: all {len(self.script)} steps were used "
                                         f"and another {self.request_kind} request arrived.")
            self._cursor += 1
            return self.script[self._cursor - 1]

    def _step(self, rec: Any) -> Any:
        """The next step, resolved: callables called with the request, a str made a text reply."""
        step = self._next_step(rec)
        while callable(step):
            step = step(rec)
        if isinstance(step, str):
            step = self.text_reply(step)
        if not isinstance(step, self.reply_type):
            raise self._script_error(f"a step must be a Reply, str or callable, got {step!r}")
        return step

    def _next_serial(self) -> int:
        """1, 2, ... per answered request: numbers response and call ids."""
        with self._lock:
            self._served += 1
            return self._served
