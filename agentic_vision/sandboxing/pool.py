"""A warm pool of ready workers, shared by every sandbox kind.

Starting a sandbox (a bubblewrap or a container, then Python and its
imports) takes most of a second; handing over one that is already waiting
takes milliseconds.  Each worker is handed over once, to one session, and the
pool is refilled in the background.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from ..errors import SandboxUnavailable
from .worker import Worker


class WorkerPool:
    """``parallel``: how many workers may be starting at once.  A forked local
    session spends most of its start waiting (on its forks and the kernel's
    cgroup moves), so two refills at a time keep up with sessions used back to back."""

    def __init__(self, spawn: Callable[[], Worker], size: int, name: str = "sandbox-pool", parallel: int = 1) -> None:
        self._spawn = spawn
        self.size = size
        self.name = name
        self.parallel = max(1, parallel)
        self._idle: deque[Worker] = deque()
        self._lock = threading.Lock()
        self._starting = 0  # refills under way
        self._closed = False

    @property
    def idle(self) -> list[Worker]:
        """The workers waiting now, next to be handed over first."""
        with self._lock:
            return list(self._idle)

    def acquire(self) -> Worker:
        """A ready worker: a waiting one if it is still alive, else a cold start."""
        worker = None
        with self._lock:
            while self._idle:
                candidate = self._idle.popleft()
                if candidate.alive:
                    worker = candidate
                    break
                threading.Thread(target=candidate.kill, daemon=True).start()
        if worker is None:
            worker = self._spawn()
            worker.cold_start = True
        self._refill_in_background()
        return worker

    def _refill_in_background(self) -> None:
        with self._lock:
            if self._closed:
                return
            count = min(self.size - len(self._idle) - self._starting, self.parallel - self._starting)
            if count <= 0:
                return
            self._starting += count
        for _ in range(count):
            threading.Thread(target=self._refill_one, name=self.name, daemon=True).start()

    def _refill_one(self) -> None:
        try:
            worker = self._spawn()
        except SandboxUnavailable:
            worker = None  # the next acquire() starts one cold and reports the error
        with self._lock:
            self._starting -= 1
            kept = worker is not None and not self._closed
            if kept:
                self._idle.append(worker)
        if kept:
            self._refill_in_background()
        elif worker is not None:  # the pool closed while it started
            worker.kill()

    def warm(self, timeout: float = 120.0) -> None:
        """Blocks until the pool is full and no refill is running (e.g. before timing)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                full, busy = len(self._idle) >= self.size, self._starting > 0
            if full and not busy:
                return
            if not busy:
                worker = self._spawn()
                with self._lock:
                    self._idle.append(worker)
                continue
            time.sleep(0.005)
        raise SandboxUnavailable(f"the warm pool did not fill within {timeout:.0f} s")

    def close(self) -> list[Worker]:
        """Stops refilling; returns the waiting workers for the caller to end."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
        return idle


class PooledExecutor:
    """What every executor shares: sessions get workers from a warm pool of ``spawn()``'s.

    A subclass sets ``kind``, ``pool_size`` and ``pool = WorkerPool(self.spawn, ...)``.
    """

    kind: str
    pool_size: int
    pool: WorkerPool
    # Library specs of the extras installed for this executor's sandboxes (extras.Manifest.specs);
    # empty for the default environment.
    extras: tuple = ()

    def spawn(self) -> Worker:
        """A new worker that said ready (a cold start)."""
        raise NotImplementedError

    def acquire(self) -> Worker:
        """A ready worker never used by another session (a waiting one when it can)."""
        return self.pool.acquire()

    def warm(self, timeout: float = 120.0) -> None:
        """Fills the pool now (blocking), e.g. before timing a session."""
        self.pool.warm(timeout)

    def idle_workers(self) -> list[Worker]:
        """The workers waiting in the pool, the next to be handed over first."""
        return self.pool.idle
