"""A hostile sandbox runtime, started in a real sandbox in place of the broker.

Model code can only reach the broker, which checks what it sends; this
program stands in for a broken or subverted broker, so the host's own
checks are tested on their own.  It answers like the real runtime (``ready``,
``initialized``, ``print(1)`` prints ``1``) until a run's code names an
attack, then does what the attack says.  Run as ``python -c SOURCE``.
"""

import json
import os
import struct
import sys
import threading
import time
import zlib

sys.path.insert(0, "/opt/agentic-vision/sandbox")
import protocol  # noqa: E402

rx = os.fdopen(0, "rb")
tx = os.fdopen(1, "wb")
lock = threading.Lock()
MiB = 1024 * 1024


def raw(data: bytes) -> None:
    with lock:
        tx.write(data)
        tx.flush()


def send(header: dict, blobs=()) -> None:
    raw(protocol.encode_message(header, blobs))


def frame(header_bytes: bytes) -> bytes:
    return struct.pack(">I", len(header_bytes)) + header_bytes


def png(width: int, height: int) -> bytes:
    """A real grayscale PNG (all black): tiny on the wire, width*height pixels to decode."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


SMALL = png(2, 2)


def result(images=(), **fields) -> None:
    header = {"op": "result", "outcome": "OUTCOME_OK", "dropped": 0, "notes": [],
              "images": [{"mime_type": "image/png"} for _ in images]}
    header.update(fields)
    send(header, list(images))


def sourced(sources) -> None:
    """One small image per source claim (provenance of shown images)."""
    send({"op": "result", "outcome": "OUTCOME_OK", "dropped": 0, "notes": [],
          "images": [{"mime_type": "image/png", "source": s} for s in sources]}, [SMALL] * len(sources))


def claim(box, name="photo.jpg", **fields):
    return {"input": name, "box": box, "angle": 0, "how": "tracked", "score": 1, **fields}


FORGED_SOURCES = [
    claim([0, 0, 1e300, 1e300]),
    claim([-500, -500, -10, -10]),
    claim([float("nan"), 0, 10, 10]),
    claim([0, 0, float("inf"), 10]),
    claim([0, 0, 10, 10], name="nope.png"),
    claim([0, 0, 10, 10], name="../../etc/passwd"),
    claim([0, 0, 10, 10], name="n" * 100_000),
    claim([0, 0, 10, 10], how="matched"),
    claim([5000, 5000, 5100, 5100], angle=30),
    claim([-50, -40, 100, 120]),
]


def flood(make_frame) -> None:
    def loop():
        data = make_frame()
        while True:
            raw(data)

    threading.Thread(target=loop, daemon=True).start()


def stop_reading() -> None:
    result()
    time.sleep(3600)  # never reads another request


ATTACKS = {
    "sixty images": lambda: result([SMALL] * 60),
    "huge blobs": lambda: (raw(frame(json.dumps({
        "op": "result", "outcome": "OUTCOME_OK", "dropped": 0, "notes": [],
        "images": [{"mime_type": "image/png"}] * 8, "blobs": [250 * MiB] * 8}).encode())),
        [raw(struct.pack(">I", 250 * MiB) + b"\0" * (250 * MiB)) for _ in range(8)]),
    "notes is a number": lambda: result(notes=5),
    "images are numbers": lambda: send({"op": "result", "outcome": "OUTCOME_OK", "dropped": 0, "notes": [],
                                        "images": [1]}, [SMALL]),
    "forty 8000x8000 pngs": lambda: result([png(8000, 8000)] * 40),
    "ten 8000x8000 pngs": lambda: result([png(8000, 8000)] * 10),
    "empty objects": lambda: raw(frame(b'{"op":"output","data":"x","junk":[' + b",".join([b"{}"] * 250_000) + b"]}")),
    "64 MiB of empty objects": lambda: raw(frame(b"[" + b"{}," * (21 * MiB) + b"{}]")),
    "deep nesting": lambda: raw(frame(b'{"op":"result","notes":' + b"[" * 100_000 + b"]" * 100_000 + b"}")),
    "16 MiB output frames between runs": lambda: (result(), flood(
        lambda: protocol.encode_message({"op": "output", "data": "x" * (16 * MiB)}))),
    "small output frames between runs": lambda: (result(), flood(
        lambda: protocol.encode_message({"op": "output", "data": "y" * 60_000}))),
    "stop reading": stop_reading,
    "output flood in a run": lambda: ([send({"op": "output", "data": "z" * 65_536}) for _ in range(400)], result()),
    "wrong reply": lambda: send({"op": "initialized"}),
    "two results": lambda: (result(), result()),
    "unknown op": lambda: send({"op": "pwn"}),
    "header is a list": lambda: raw(frame(b"[1, 2]")),
    "header is not utf-8": lambda: raw(frame(b'{"op": "\xff\xfe"}')),
    "4 GiB header length": lambda: raw(b"\xff\xff\xff\xff"),
    "output is a number": lambda: send({"op": "output", "data": 5}),
    "negative dropped": lambda: result(dropped=-1),
    "extra field": lambda: result(pwn="x"),
    "outcome forged": lambda: result(outcome="OUTCOME_PWNED"),
    "dropped is NaN": lambda: result(dropped=float("nan")),
    "dropped is true": lambda: result(dropped=True),
    "blob longer than announced": lambda: raw(frame(json.dumps({
        "op": "result", "outcome": "OUTCOME_OK", "dropped": 0, "notes": [],
        "images": [{"mime_type": "image/png"}], "blobs": [100]}).encode()) + struct.pack(">I", 10 * MiB) + b"\0" * MiB),
    "note too long": lambda: result(notes=["n" * 100_000]),
    "half a frame": lambda: (raw(struct.pack(">I", 1000) + b'{"op"'), time.sleep(3600)),
    "stderr flood": lambda: ([os.write(2, b"x" * 65536) for _ in range(192)], os.write(2, b"the end\n"),
                             send({"op": "output", "data": "ok\n"}), result()),
    "forged died": lambda: send({"op": "died", "message": "nothing to see", "violation": False}),
    "forged sources": lambda: sourced(FORGED_SOURCES),
    "a source of 100000 numbers": lambda: sourced([claim(list(range(100_000)))]),
    "mime type lies": lambda: send({"op": "result", "outcome": "OUTCOME_OK", "dropped": 0, "notes": [],
                                    "images": [{"mime_type": "image/png"}]}, [b"GIF89a" + b"\0" * 100]),
}


def main() -> None:
    send({"op": "ready"})
    while True:
        header, blobs = protocol.read_message(rx)
        op = header.get("op")
        if op in ("init", "add_files"):
            send({"op": "initialized"})
        elif op == "close":
            return
        elif op == "run":
            attack = ATTACKS.get(header["code"])
            if attack is not None:
                attack()
            else:
                send({"op": "output", "data": "1\n"})
                result()


main()
