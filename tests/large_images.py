"""Huge test inputs, made once per test run: a 108 MP photo (JPEG), a 108 MP plan
(PNG), and a PNG whose header claims more pixels than it has."""

from __future__ import annotations

import atexit
import shutil
import struct
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path

from agentic_vision.testing.photos import photo, plan

WIDTH, HEIGHT = 12000, 9000  # 108 megapixels
LABEL = "SN 4711-B"
_DIR = Path(tempfile.mkdtemp(prefix="agentic-vision-large-"))
atexit.register(shutil.rmtree, _DIR, True)


@lru_cache(maxsize=None)
def big_jpeg() -> Path:
    path = _DIR / "big.jpg"
    photo(WIDTH, HEIGHT, label=LABEL).save(path, quality=90)
    return path


@lru_cache(maxsize=None)
def big_png() -> Path:
    path = _DIR / "plan.png"
    plan(WIDTH, HEIGHT).save(path, compress_level=1)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for width x height (1 bit grey) with a tiny, short IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
