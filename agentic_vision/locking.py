"""One process at a time on shared state (the sandbox environment, a bench --out folder).

An exclusive ``flock`` on a small file beside the state: the kernel drops it when the
holder exits, however it exits, so a killed run never leaves a stale lock behind.
The holder writes its pid into the file, for the message the next one shows.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


class Busy(Exception):
    """Another process holds the lock; ``pid`` is its process id when it is known."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"held by pid {pid}" if pid else "held by another process")
        self.pid = pid


def _holder(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextmanager
def exclusive(path: Path, waiting: Callable[[int | None], None] | None = None) -> Iterator[None]:
    """Holds ``path`` locked.  Without ``waiting`` a held lock raises Busy at once; with it,
    ``waiting(pid)`` is called once (to say so) and the lock is waited for."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is None:
                raise Busy(_holder(fd)) from None
            waiting(_holder(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
