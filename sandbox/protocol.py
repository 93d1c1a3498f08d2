"""Framing between the host and the sandbox runtime.

A message is a JSON header and zero or more binary blobs:

    [4-byte big-endian length][JSON header, UTF-8]
    [4-byte big-endian length][blob bytes]  ... one per entry of header["blobs"]

JSON keeps the channel inspectable and cannot execute anything on load (we
never unpickle what comes out of a sandbox); blobs keep image bytes out of
base64.  Both sides import this file: the host as
``agentic_vision.sandbox_runtime.protocol``, the runtime as a sibling module.
"""

from __future__ import annotations

import json
import struct

MAX_HEADER = 16 * 1024 * 1024
MAX_BLOB = 256 * 1024 * 1024
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame, or hung up."""


def _read_exact(stream, n: int) -> bytes:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise ProtocolError("channel closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream, limit: int) -> bytes:
    (n,) = _LEN.unpack(_read_exact(stream, 4))
    if n > limit:
        raise ProtocolError(f"frame of {n} bytes exceeds the limit of {limit}")
    return _read_exact(stream, n)


def write_message(stream, header: dict, blobs: list[bytes] | tuple = ()) -> None:
    header = dict(header)
    header["blobs"] = [len(b) for b in blobs]
    data = json.dumps(header, separators=(",", ":")).encode()
    parts = [_LEN.pack(len(data)), data]
    for blob in blobs:
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    stream.write(b"".join(parts))
    stream.flush()


def read_message(stream) -> tuple[dict, list[bytes]]:
    try:
        header = json.loads(_read_frame(stream, MAX_HEADER))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad header: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not an object")
    sizes = header.get("blobs", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) for s in sizes):
        raise ProtocolError("bad blob list")
    blobs = [_read_frame(stream, MAX_BLOB) for _ in sizes]
    if [len(b) for b in blobs] != sizes:
        raise ProtocolError("blob sizes do not match the header")
    return header, blobs
