"""Tracebacks as the model sees them: its own frames and the library frames below them.

The runtime's frames (the ``exec`` that ran the code, ``display``, the
input cache around ``Image.open``) and the guard's are noise to the model,
and paths such as ``/home/.../sandbox-env/lib/python3.11/site-packages/``
leak where things live on the host.  Frames are kept from the model's first
frame (``<code>``) on, minus those of this directory, and library paths are
shortened to the part after ``site-packages/`` (or the standard library's
``lib/pythonX.Y/``).  Runs inside the sandbox; imports nothing from the host.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_FILE = "<code>"
_STDLIB = re.compile(r"^.*/lib/python\d+\.\d+/")


def short_path(filename: str) -> str:
    if filename.startswith("<"):
        return filename
    if "/site-packages/" in filename:
        return filename.rsplit("/site-packages/", 1)[1]
    if "/dist-packages/" in filename:
        return filename.rsplit("/dist-packages/", 1)[1]
    match = _STDLIB.match(filename)
    if match:
        return f"python{sys.version_info[0]}.{sys.version_info[1]}/{filename[match.end():]}"
    if filename.startswith(os.getcwd() + os.sep):  # a module the code wrote and imported
        return os.path.relpath(filename)
    return os.path.basename(filename)


def _ours(filename: str) -> bool:
    return os.path.dirname(os.path.abspath(filename)) == HERE if not filename.startswith("<") else False


def _filter(stack: traceback.StackSummary) -> traceback.StackSummary:
    frames = list(stack)
    first = next((i for i, f in enumerate(frames) if f.filename == MODEL_FILE), None)
    if first is not None:
        frames = frames[first:]
    kept = []
    for frame in frames:
        if _ours(frame.filename):
            continue
        frame.filename = short_path(frame.filename)
        kept.append(frame)
    return traceback.StackSummary.from_list(kept)


def format_for_model(exc: BaseException, source: str | None = None) -> str:
    """The traceback of ``exc`` (and its chained causes) with only the frames worth showing;
    ``source``, the code that ran, lets its own lines be quoted."""
    if source is not None:
        linecache.cache[MODEL_FILE] = (len(source), None, source.splitlines(True), MODEL_FILE)
    te = traceback.TracebackException.from_exception(exc)
    seen = set()
    pending = [te]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = _filter(current.stack)
        if isinstance(current.filename if hasattr(current, "filename") else None, str) and current.filename:
            current.filename = short_path(current.filename)  # a SyntaxError in a library file
        for chained in (current.__cause__, current.__context__):
            if chained is not None:
                pending.append(chained)
        pending.extend(getattr(current, "exceptions", None) or [])  # ExceptionGroup
    return "".join(te.format())
