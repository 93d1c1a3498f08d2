"""Framing between the host and the sandbox, and what each side may send.

A message is a JSON header and zero or more binary blobs:

    [4-byte big-endian length][JSON header, UTF-8]
    [4-byte big-endian length][blob bytes]  ... one per entry of header["blobs"]

JSON keeps the channel inspectable and cannot execute anything on load (we
never unpickle what comes out of a sandbox); blobs keep image bytes out of
base64.  Both sides import this file: the host as
``agentic_vision.sandbox_runtime.protocol``, the sandbox as a sibling module.

Requests (host -> sandbox) come from the trusted side and are read with
``read_message``.  Replies (sandbox -> host) are hostile input: the broker
reads the interpreter's replies with ``read_reply`` and the host reads the
broker's with it again, so neither trusts the other to have checked.  A
reply is accepted only if its op is one the reader expects right now, its
header is within that op's byte limit and has few enough containers and
items that parsing it cannot amplify (``[{},{},...]`` is refused before
``json.loads`` sees it), every field has the type and length of ``REPLIES``,
and its blobs are announced within the image limits before any is read.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Callable, Collection

MAX_HEADER = 16 * 1024 * 1024  # requests: the host's own code and file names
MAX_BLOB = 256 * 1024 * 1024  # requests: one input file

# Limits of one run, the same on both sides of the boundary.
OUTPUT_LIMIT = 64 * 1024  # characters of stdout+stderr kept
MAX_IMAGES = 10
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_NOTES = 32
MAX_NOTE = 1000
MAX_TRACEBACK = 16 * 1024  # characters of a run's structured error's traceback

_LEN = struct.Struct(">I")
# A JSON string (escapes included); what is left once strings are blanked is
# the skeleton whose containers and commas cost memory when parsed.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


class ProtocolError(Exception):
    """The other side sent something that is not a valid message, or hung up."""


class ChannelClosed(ProtocolError):
    """End of stream: the other side exited or closed its end."""


class InvalidMessage(ProtocolError):
    """A frame that breaks the protocol: the sender is broken or hostile."""


# -- framing ------------------------------------------------------------------------


def _read_exact(stream, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed("channel closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_length(stream, limit: int, what: str) -> int:
    (n,) = _LEN.unpack(_read_exact(stream, 4))
    if n > limit:
        raise InvalidMessage(f"{what} of {n} bytes exceeds the limit of {limit}")
    return n


def encode_message(header: dict, blobs: list[bytes] | tuple = ()) -> bytes:
    header = dict(header)
    header["blobs"] = [len(b) for b in blobs]
    data = json.dumps(header, separators=(",", ":")).encode()
    parts = [_LEN.pack(len(data)), data]
    for blob in blobs:
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def write_message(stream, header: dict, blobs: list[bytes] | tuple = ()) -> None:
    stream.write(encode_message(header, blobs))
    stream.flush()


def _count_items(data: bytes) -> int:
    skeleton = _STRING.sub(b"", data)
    return skeleton.count(b"{") + skeleton.count(b"[") + skeleton.count(b",")


def _loads(data: bytes) -> dict:
    try:
        header = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidMessage(f"bad header: {str(exc)[:100]}") from None
    if not isinstance(header, dict):
        raise InvalidMessage("header is not an object")
    return header


def read_message(stream) -> tuple[dict, list[bytes]]:
    """A request from the host (trusted: only size limits)."""
    header = _loads(_read_exact(stream, _read_length(stream, MAX_HEADER, "header")))
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and 0 <= s <= MAX_BLOB for s in sizes):
        raise InvalidMessage("bad blob list")
    blobs = [_read_exact(stream, _read_length(stream, MAX_BLOB, "blob")) for _ in sizes]
    if [len(b) for b in blobs] != sizes:
        raise InvalidMessage("blob sizes do not match the header")
    return header, blobs


# -- the schema of replies ------------------------------------------------------------
# Each checker takes the value and where it is (for the message) and returns
# the value to keep; anything unexpected raises InvalidMessage.


def _fail(where: str, wanted: str):
    raise InvalidMessage(f"{where} must be {wanted}")


def Str(max_len: int):
    def check(value, where):
        if not isinstance(value, str) or len(value) > max_len:
            _fail(where, f"a string of at most {max_len} characters")
        return value

    return check


def Int(lo: int, hi: int):
    def check(value, where):
        if type(value) is not int or not lo <= value <= hi:
            _fail(where, f"an integer from {lo} to {hi}")
        return value

    return check


def Bool(value, where):
    if type(value) is not bool:
        _fail(where, "true or false")
    return value


def OneOf(*choices: str):
    def check(value, where):
        if value not in choices or not isinstance(value, str):
            _fail(where, f"one of {', '.join(choices)}")
        return value

    return check


def List(item, max_len: int):
    def check(value, where):
        if type(value) is not list or len(value) > max_len:
            _fail(where, f"a list of at most {max_len} items")
        return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

    return check


def Map(key, value_check, max_len: int):
    def check(value, where):
        if type(value) is not dict or len(value) > max_len:
            _fail(where, f"an object of at most {max_len} entries")
        return {key(k, f"{where} key"): value_check(v, f"{where}[{k!r:.40}]") for k, v in value.items()}

    return check


def Fields(required: dict, optional: dict | None = None):
    optional = optional or {}

    def check(value, where):
        if type(value) is not dict:
            _fail(where, "an object")
        unknown = set(value) - set(required) - set(optional)
        if unknown:
            raise InvalidMessage(f"{where} has unexpected field {sorted(unknown)[0]!r:.40}")
        out = {}
        for name, field in required.items():
            if name not in value:
                raise InvalidMessage(f"{where} lacks {name!r}")
            out[name] = field(value[name], f"{where}.{name}")
        for name, field in optional.items():
            if name in value:
                out[name] = field(value[name], f"{where}.{name}")
        return out

    return check


def Number(limit: float):
    def check(value, where):
        # json.loads takes NaN and Infinity: refused here with everything non-finite.
        if type(value) not in (int, float) or not -limit <= value <= limit:
            _fail(where, f"a number from {-limit:g} to {limit:g}")
        return value

    return check


def DroppedIfBad(field):
    """A field whose bad value is dropped (None) instead of refusing the message."""

    def check(value, where):
        try:
            return field(value, where)
        except InvalidMessage:
            return None

    return check


class Reply:
    """One op the sandbox may send: its fields, header size and blob limits."""

    def __init__(self, fields: dict, header_bytes: int = 16 * 1024, max_items: int = 64, max_blobs: int = 0,
                 optional: dict | None = None) -> None:
        self.check = Fields({"op": Str(16), "blobs": List(Int(0, MAX_IMAGE_BYTES), max_blobs), **fields}, optional)
        self.header_bytes = header_bytes
        self.max_items = max_items
        self.max_blobs = max_blobs


_PROBLEM = Str(MAX_NOTE)
# Where a shown image came from (sandbox/provenance.py).  Only its shape is
# checked here; the host checks it against the inputs (agentic_vision/provenance.py).
# A malformed one is dropped, not a violation: provenance is a hint, never needed.
_COORD = Number(1e7)
SOURCE = DroppedIfBad(
    Fields({"input": Str(255), "box": List(_COORD, 4), "angle": Number(360), "how": OneOf("tracked"),
            "score": Number(1)})
)
REPLIES = {
    "ready": Reply({}),
    "initialized": Reply({}),
    "error": Reply({"message": _PROBLEM}),
    # \uXXXX escapes of non-BMP characters take 12 bytes per character.
    "output": Reply({"data": Str(OUTPUT_LIMIT)}, 12 * OUTPUT_LIMIT + 1024, optional={"stream": OneOf("stdout", "stderr")}),
    "result": Reply(
        {
            "outcome": OneOf("OUTCOME_OK", "OUTCOME_FAILED"),
            "dropped": Int(0, 2**53),
            "notes": List(Str(MAX_NOTE), MAX_NOTES),
            "images": List(Fields({"mime_type": Str(64)}, {"source": SOURCE}), MAX_IMAGES),
        },
        64 * 1024 + MAX_NOTES * MAX_NOTE * 12 + (MAX_TRACEBACK + MAX_NOTE + 200) * 12,
        max_items=256,
        max_blobs=MAX_IMAGES,
        # The exception that ended a failed run: its type name, message and traceback.
        optional={"error": Fields({"name": Str(200), "value": Str(MAX_NOTE), "traceback": Str(MAX_TRACEBACK)})},
    ),
    "libraries": Reply(
        {
            "libraries": Map(
                Str(100),
                Fields({"available": Bool}, {"version": Str(100), "error": Str(300)}),
                100,
            )
        },
        256 * 1024,
        max_items=1024,
    ),
    # The broker: the interpreter died (or was killed for breaking the
    # protocol); the sandbox is finished.  Accepted at any time.
    "died": Reply({"message": _PROBLEM, "violation": Bool}),
}
MAX_REPLY_HEADER = max(spec.header_bytes for spec in REPLIES.values())
MAX_REPLY_ITEMS = max(spec.max_items for spec in REPLIES.values())


def read_reply(stream, expected: Callable[[], Collection[str]]) -> tuple[dict, list[bytes]]:
    """A checked reply from the sandbox; ``expected()`` names the ops acceptable now.

    Raises ChannelClosed at the end of the stream and InvalidMessage for
    anything else that is not a valid reply; never reads more than the
    header limit of the op plus the announced (and allowed) blobs.
    """
    data = _read_exact(stream, _read_length(stream, MAX_REPLY_HEADER, "header"))
    items = _count_items(data)
    if items > MAX_REPLY_ITEMS:
        raise InvalidMessage(f"header has {items} containers and items, more than {MAX_REPLY_ITEMS}")
    header = _loads(data)
    op = header.get("op")
    if not isinstance(op, str) or op not in REPLIES:
        raise InvalidMessage(f"unknown op {str(op)[:40]!r}")
    if op not in expected():
        raise InvalidMessage(f"unexpected {op!r} message")
    spec = REPLIES[op]
    if len(data) > spec.header_bytes:
        raise InvalidMessage(f"{op!r} header of {len(data)} bytes exceeds the limit of {spec.header_bytes}")
    if items > spec.max_items:
        raise InvalidMessage(f"{op!r} header has {items} containers and items, more than {spec.max_items}")
    header = spec.check(header, op)
    if op == "result" and len(header["images"]) != len(header["blobs"]):
        raise InvalidMessage("'result' has a different number of images and blobs")
    blobs = [_read_exact(stream, _read_length(stream, size, "blob")) for size in header["blobs"]]
    if [len(b) for b in blobs] != header["blobs"]:
        raise InvalidMessage("blob sizes do not match the header")
    del header["blobs"]
    return header, blobs

