"""Admission in order: a capacity (bytes of memory, or code-execution slots) handed
out first come, first served, with a bounded number of waiters and a deadline.

Everything here runs on the event loop (no locks): ``take`` waits, ``Ticket.release``
gives back and lets the next waiters in.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import anyio


class QueueFull(Exception):
    """More requests are already waiting than the queue takes."""


class Ticket:
    """An amount taken from an ``Admission``; ``release()`` once, any number of calls."""

    def __init__(self, admission: "Admission", amount: int) -> None:
        self.admission = admission
        self.amount = amount

    def shrink(self, amount: int) -> None:
        """Keeps only ``amount`` (what turned out to be needed) and gives back the rest."""
        if 0 <= amount < self.amount:
            self.admission._give_back(self.amount - amount)
            self.amount = amount

    def release(self) -> None:
        if self.amount:
            self.admission._give_back(self.amount)
            self.amount = 0


class _Waiter:
    def __init__(self, amount: int) -> None:
        self.amount = amount
        self.event = anyio.Event()
        self.granted = False


class Admission:
    def __init__(self, capacity: int, max_waiting: int | None = None, on_idle: Callable[[], None] | None = None) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.on_idle = on_idle  # called when all that was taken is back
        self.used = 0
        self._waiting: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def take(self, amount: int, timeout: float) -> Ticket | None:
        """``amount`` (at most ``capacity``) once it fits and everyone before has been served;
        None when ``timeout`` seconds pass first; ``QueueFull`` at once when the queue is full."""
        if amount > self.capacity:
            raise ValueError(f"{amount} is more than the capacity {self.capacity}")
        if not self._waiting and self.used + amount <= self.capacity:
            self.used += amount
            return Ticket(self, amount)
        if self.max_waiting is not None and len(self._waiting) >= self.max_waiting:
            raise QueueFull()
        waiter = _Waiter(amount)
        self._waiting.append(waiter)
        try:
            with anyio.move_on_after(timeout):
                await waiter.event.wait()
        except BaseException:  # cancelled (the client went away): never keep what was granted meanwhile
            self._abandon(waiter)
            raise
        if not waiter.granted:
            self._abandon(waiter)
            return None
        return Ticket(self, amount)

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.granted:
            self._give_back(waiter.amount)
        else:
            self._waiting.remove(waiter)
            self._wake()  # it may have been the one the others queued behind

    def _give_back(self, amount: int) -> None:
        self.used -= amount
        self._wake()
        if self.used == 0 and self.on_idle is not None:
            self.on_idle()

    def _wake(self) -> None:
        while self._waiting and self.used + self._waiting[0].amount <= self.capacity:
            waiter = self._waiting.popleft()
            self.used += waiter.amount
            waiter.granted = True
            waiter.event.set()
