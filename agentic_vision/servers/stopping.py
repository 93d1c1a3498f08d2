"""SIGTERM ends a server the way Ctrl-C does: through the interpreter's exit, so the
sandboxes' clean-up at exit runs (the Docker sandbox removes its containers then).

uvicorn catches SIGTERM for a graceful shutdown and afterwards raises it again
under the handler that was there before it; with Python's default handler that
ends the process on the spot, atexit handlers and all.
"""

from __future__ import annotations

import signal
import threading


def exit_on_sigterm() -> None:
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        signal.signal(signal.SIGTERM, _exit)


def _exit(signum, frame) -> None:
    raise SystemExit(128 + signum)
