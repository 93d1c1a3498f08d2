"""The PDF renderer's child process: PDFium on untrusted bytes, away from the host.

Run by ``agentic_vision.inputs.pdf`` through ``sandboxing.parser_jail`` as
``python -c <this file's text>`` (inside bubblewrap where it can): it imports
only the standard library, pypdfium2 and PIL, so nothing of the package
needs to be visible to it.  Before it reads a byte of the PDF it takes its
limits on itself (address space, CPU time, no files written, no new
processes, hard limits so they cannot be raised back), drops root if it has
it, sets no_new_privs and loads the seccomp filter the host compiled.

Protocol: stdin carries one JSON line (settings and the filter); the PDF is
read from the inherited file descriptor it names.  stdout carries frames,
each a 4-byte big-endian length and a payload: a JSON header
``{"count": N}`` (or ``{"error": ...}``); then stdin brings the pages to
render (``{"pages": [0, 2]}``), and stdout per page a JSON frame with its
size and two images (the page as PNG, the model's view as JPEG), then
``{"done": true}``.  The host trusts none of it beyond what it checks.
"""

import base64
import ctypes
import io
import json
import os
import resource
import struct
import sys

import pypdfium2 as pdfium
from PIL import Image

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 38, 22, 2
NOBODY = 65534


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def confine(settings: dict) -> None:
    """Limits, privileges and the system-call filter, in an order that cannot be undone."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4  # a pointer must not be cut to an int
    libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)
    memory, cpu = int(settings["memory_bytes"]), int(settings["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # SIGXCPU at the limit, SIGKILL a second later should it be caught.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    if os.geteuid() == 0:  # no bubblewrap here: root gives up its uid before parsing anything
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes or threads
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")
    program = base64.b64decode(settings.get("seccomp", ""))
    if program:
        buf = ctypes.create_string_buffer(program, len(program))
        prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "seccomp")


def send(out, payload) -> None:
    data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    out.write(struct.pack(">I", len(data)) + data)
    out.flush()


def render_page(pdf, index: int, settings: dict, out) -> None:
    page = pdf[index]
    try:
        width_pt, height_pt = page.get_size()
        scale = settings["dpi"] / 72
        max_pixels = settings["max_pixels"]
        if width_pt * height_pt * scale * scale > max_pixels:
            scale = (max_pixels / (width_pt * height_pt)) ** 0.5 * 0.999  # PDFium rounds the size up
        try:
            image = page.render(scale=scale).to_pil()
        except MemoryError:
            raise
        except Exception as exc:
            send(out, {"error": "page", "page": index, "detail": str(exc)[:200]})
            return
    finally:
        page.close()
    full = io.BytesIO()
    image.save(full, format="PNG", compress_level=1)
    side = settings["max_side"]
    view = image.convert("RGB")
    if max(view.size) > side:
        ratio = side / max(view.size)
        view = view.resize((max(1, round(view.width * ratio)), max(1, round(view.height * ratio))),
                           Image.LANCZOS, reducing_gap=3.0)
    small = io.BytesIO()
    view.save(small, format="JPEG", quality=90)
    send(out, {"page": index, "width": image.width, "height": image.height, "dpi": round(scale * 72),
               "view_width": view.width, "view_height": view.height})
    send(out, full.getvalue())
    send(out, small.getvalue())


def main() -> None:
    out = sys.stdout.buffer
    settings = json.loads(sys.stdin.buffer.readline())
    confine(settings)
    with os.fdopen(settings["fd"], "rb") as source:
        data = source.read()
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        send(out, {"error": "open", "detail": str(exc)[:200]})
        return
    count = len(pdf)
    send(out, {"count": count})
    if count == 0:
        return
    line = sys.stdin.buffer.readline()  # the host's choice, once it knows the count
    if not line:
        return
    for index in json.loads(line)["pages"]:
        if 0 <= index < count:
            render_page(pdf, index, settings, out)
    send(out, {"done": True})


if __name__ == "__main__":
    try:
        main()
    except MemoryError:
        try:
            send(sys.stdout.buffer, {"error": "memory"})
        except Exception:
            pass
        os._exit(3)
