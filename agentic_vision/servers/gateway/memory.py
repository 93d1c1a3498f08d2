"""What request bodies may cost in memory: received and parsed within a budget.

Parsed JSON costs far more than its bytes (``[{},{},...]`` is 24 bytes of
Python per 3 of JSON), so two things bound it.  A pre-scan of the raw bytes
(one regular expression, nothing built) rejects absurd structure -- more than
``MAX_VALUES`` JSON values or nesting deeper than ``MAX_DEPTH`` -- and from
what is left estimates the parse: twice the body at the width of its widest
character (the decoded text and the strings made from it) plus
``VALUE_COST`` per value.  Then two budgets, taken first come, first served:

* receiving (a quarter of ``--max-memory-mb``): the declared length of each
  body is taken before its first byte is read and held until the body has
  been parsed and read (or has gone upstream);
* parsing (the rest): the estimate, while the body is parsed and read, and
  for a code-execution request while it waits for a slot and runs (its text
  and images, and the model client's copies of them, take about as much).

A request holding the first may wait for the second, never the reverse, so
neither waits on itself.  Past ``MEMORY_WAIT_S`` of waiting: 503 with
Retry-After.
"""

from __future__ import annotations

import ctypes
import logging
import platform
import re
from typing import Callable, TypeVar

import anyio
from starlette.requests import Request

from ...errors import InputError
from .admission import Admission, Ticket
from .errors import GatewayError, bad_request
from .wire import parse_json

MAX_VALUES = 100_000  # JSON values in one body: long chats and big tool schemas stay well under
MAX_DEPTH = 64  # nesting; Gemini requests need about 10, function arguments a few more
VALUE_COST = 200  # bytes of Python a parsed JSON value takes at most, besides its characters
MEMORY_WAIT_S = 10.0  # a request waits this long for memory, then gets 503
RETRY_AFTER_S = 5
TRIM_AFTER = 4 * 2**20  # bytes received before the heaps are trimmed, once nothing is being received
T = TypeVar("T")
log = logging.getLogger("agentic_vision.gateway")
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)

# A string runs to its closing quote or, unterminated, to the end: every match starting at a
# quote succeeds, so no quote is scanned from twice (linear time whatever the bytes).
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)|[\[\]{},]', re.S)
_WIDE = re.compile(rb"[\xc4-\xf4]|\\u(?:0[1-9a-fA-F]|[1-9a-fA-F])")  # past Latin-1: 2 bytes a character
_ASTRAL = re.compile(rb"[\xf0-\xf4]|\\u[dD][89abAB]")  # past the BMP: 4 bytes a character


def shape_cost(raw: bytes | bytearray) -> int:
    """The estimated bytes parsing ``raw`` takes; 400 for a structure past the limits."""
    values = depth = 0
    for match in _TOKENS.finditer(raw):
        c = raw[match.start()]
        if c in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise bad_request(f"Invalid JSON payload received: nested deeper than {MAX_DEPTH} levels.")
        elif c in b"]}":
            depth -= 1
            continue
        values += 1  # an object, an array, a string, or the value after a comma
        if values > MAX_VALUES:
            raise bad_request(f"Invalid JSON payload received: more than {MAX_VALUES} JSON values in one "
                              "request; send fewer contents or parts (upload large data as a file).")
    if raw.isascii() and b"\\u" not in raw:
        width = 1
    else:
        width = 4 if _ASTRAL.search(raw) else 2 if _WIDE.search(raw) else 1
    # The decoded text and the strings made from it; then, with the strings, a base64 string
    # turned to the standard alphabet and its bytes (1.75: it is ASCII).
    return (2 * width + 0.75) * len(raw) + VALUE_COST * (values + 1)


def _libc() -> ctypes.CDLL | None:
    return ctypes.CDLL(None) if platform.libc_ver()[0] == "glibc" else None


def give_large_blocks_back() -> None:
    """glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB);
    after that, bodies are allocated from heaps that keep the memory when they are freed.  A
    fixed threshold keeps every block over 256 KiB a mapping of its own, unmapped when freed,
    so the memory of a large body goes back to the system after its request."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def trim() -> None:
    """Gives the free pages inside glibc's heaps back (the 64 KiB pieces a body arrives in
    leave them scattered there)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class Memory:
    def __init__(self, total_bytes: int) -> None:
        give_large_blocks_back()
        self.receiving = Admission(total_bytes // 4, on_idle=self._trim)
        self.parsing = Admission(total_bytes - total_bytes // 4)
        self._received_since_trim = 0

    def _trim(self) -> None:
        # Only after large bodies: a trim walks the heaps, which small requests need not pay for.
        if self._received_since_trim >= TRIM_AFTER:
            self._received_since_trim = 0
            trim()

    @staticmethod
    def _busy(what: str) -> GatewayError:
        return GatewayError(503, f"the gateway is {what} as many request bodies as its memory allows "
                            "(--max-memory-mb); retry shortly.", retry_after=RETRY_AFTER_S)

    async def receive(self, request: Request, limit: int) -> tuple[bytearray, Ticket]:
        """The body (at most ``limit`` bytes, else 413), read within the receiving budget
        (a bytearray: json takes it as it is, and no copy is made)."""
        declared = request.headers.get("content-length")
        declared = int(declared) if declared and declared.isdigit() else None
        if declared is not None and declared > limit:
            await discard(request, declared)
            raise too_large(limit)
        want = declared if declared is not None else min(limit, self.receiving.capacity)
        if want > self.receiving.capacity:
            await discard(request, want)
            raise GatewayError(413, f"a body of {want} bytes is more than this gateway takes at once "
                               f"({self.receiving.capacity} bytes, a quarter of --max-memory-mb); send it in "
                               "smaller chunks.")
        ticket = await self.receiving.take(want, MEMORY_WAIT_S)
        if ticket is None:
            await discard(request, want)
            raise self._busy("receiving")
        try:
            data = bytearray()
            async for chunk in request.stream():
                data += chunk
                if len(data) > min(limit, want):
                    await discard(request, 4 * limit)
                    raise too_large(min(limit, want))
            ticket.shrink(len(data))
            self._received_since_trim += len(data)
            return data, ticket
        except BaseException:
            ticket.release()
            raise

    async def parse(self, raw: bytes | bytearray) -> tuple[dict, Ticket]:
        """The parsed JSON object, with the parsing budget's ticket for it (release it once
        the parsed body is no longer needed)."""
        cost = await in_thread(shape_cost, raw)
        if cost > self.parsing.capacity:
            raise GatewayError(413, f"parsing this request would take about {cost // 2**20} MiB, more than "
                               f"this gateway allows ({self.parsing.capacity // 2**20} MiB, three quarters of "
                               "--max-memory-mb); send less text, or upload it as a file.")
        ticket = await self.parsing.take(cost, MEMORY_WAIT_S)
        if ticket is None:
            raise self._busy("parsing")
        try:
            return await in_thread(parse_json, raw), ticket
        except BaseException:
            ticket.release()
            raise


async def in_thread(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` in a worker thread, its exception raised here without the thread's frames.

    anyio hands an exception over in a future that those frames refer to: a cycle that
    keeps the frames' locals -- a request's whole body -- until the cyclic garbage
    collector happens to run.  A failure nobody expected is logged with its traceback first."""
    def call():
        try:
            return fn(*args), None
        except Exception as exc:
            if not isinstance(exc, (GatewayError, InputError)):
                log.exception("error in a worker thread")
            error: BaseException | None = exc
            while error is not None:
                error.__traceback__ = None
                error = error.__context__
            return None, exc

    result, failure = await anyio.to_thread.run_sync(call)
    if failure is None:
        return result
    try:
        raise failure
    finally:
        del failure  # this frame holding its own exception would be a cycle too


def too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"Request payload size exceeds the limit: {limit} bytes. Upload large files "
                        "with the Files API and reference them as fileData.")


async def discard(request: Request, up_to: int) -> None:
    """Reads what the client is still sending (within reason), so it gets to read the answer."""
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > up_to:
                break
    except Exception:
        pass
