"""The host side of sandboxing: sessions over workers from a warm pool.

``open_session`` is the entry point.  An executor (``bubblewrap`` or
``docker``) only hands over fresh, ready workers; ``session`` owns runs,
deadlines, restarts and the checks on everything a worker sends back.
"""

from __future__ import annotations

from .executors import KINDS, get_executor, resolve_kind
from .limits import Limits
from .session import DEFAULT_TIMEOUT, Executor, InputFile, Session, load_inputs, open_session

__all__ = [
    "DEFAULT_TIMEOUT",
    "Executor",
    "InputFile",
    "KINDS",
    "Limits",
    "Session",
    "get_executor",
    "load_inputs",
    "open_session",
    "resolve_kind",
]
