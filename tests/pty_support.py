"""Running a command on a real pseudo-terminal and keeping every byte it wrote there, with when."""

from __future__ import annotations

import os
import pty
import subprocess
import time


def run_on_pty(argv, env=None, cwd=None, timeout: float = 300) -> tuple[int, list[tuple[float, bytes]]]:
    """Runs argv with stdout and stderr on a pty; returns its exit status and the chunks
    read from the terminal's side, each with the seconds since start."""
    master, slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave is gone
                break
            if not chunk:
                break
            chunks.append((time.monotonic() - started, chunk))
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), chunks


def joined(chunks) -> bytes:
    return b"".join(chunk for _, chunk in chunks)


def first_time(chunks, needle: bytes) -> float:
    """When ``needle`` had fully arrived (it may span chunks)."""
    data = b""
    for at, chunk in chunks:
        data += chunk
        if needle in data:
            return at
    raise AssertionError(f"{needle!r} never reached the terminal: {data[-2000:]!r}")
