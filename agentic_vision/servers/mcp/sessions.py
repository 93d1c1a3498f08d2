"""Sandbox sessions of MCP clients: who owns which, how many, and stopping them.

A session is found by a key (owner, name): a name is only ever looked up
within its owner, so a client naming another's session gets one of its own.
Over stdio the process serves one client, so the owner is the process and
its sessions end when the client disconnects (the server exits).  Over HTTP
the owner is a connection made with the initialize handshake (its
``Mcp-Session-Id``); a stateless request has no connection to own state, so
it gets a one-off session.  The one way into a session across owners is its
share token (``share``): 256 random bits, handed out only to a client that
can already reach the session.  Sessions nobody used for ``idle_timeout``
seconds are closed, since HTTP never says that a client left.

Sandbox runs are synchronous and run in threads; ``in_thread`` turns a
cancelled tool call into a stopped run, not an abandoned one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import anyio

from ...errors import AgenticVisionError, InputError
from ...sandboxing.session import InputFile, Session, open_session

DEFAULT = "default"
TOKEN_PREFIX = "shared:"  # ':' is no name character, so a token is never taken for a name
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

T = TypeVar("T")


class SessionLimit(AgenticVisionError):
    """Too many sandboxes are open."""


def _digest(token: str) -> str:
    # Tokens are looked up by their hash: a lookup's timing can tell nothing about a token held.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def is_token(session: str | None) -> bool:
    return isinstance(session, str) and session.startswith(TOKEN_PREFIX)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"session name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


@dataclass
class ManagedSession:
    key: tuple[str, str]
    sandbox: Session
    lock: threading.Lock = field(default_factory=threading.Lock)  # one run at a time
    last_used: float = field(default_factory=time.monotonic)
    token: str | None = None  # set once the session is shared

    @property
    def name(self) -> str:
        return self.key[1]

    def add_files(self, files: list[InputFile]) -> list[str]:
        """Adds files not yet there; the same name with the same bytes is kept as is."""
        have = {f.name: f.data for f in self.sandbox.inputs}
        new = []
        for f in files:
            if f.name in have:
                if have[f.name] != f.data:
                    raise InputError(
                        f"a different file named {f.name!r} is already in the session; rename yours or reset_session"
                    )
                continue
            new.append(f)
        if new:
            self.sandbox.add_inputs([(f.name, f.data) for f in new])
        return [f.name for f in new]


class SessionRegistry:
    def __init__(self, kind: str, timeout: float, max_sessions: int, guard: bool = True,
                 docker_host: str | None = None, libraries=()) -> None:
        self.kind = kind
        self.docker_host = docker_host
        self.libraries = libraries  # extra requirements (extras.LibrarySet)
        self.timeout = timeout
        self.max_sessions = max_sessions
        self.guard = guard
        self._sessions: dict[tuple[str, str], ManagedSession] = {}
        self._shared: dict[str, tuple[str, str]] = {}  # token digest -> key
        self._opening: set[tuple[str, str]] = set()  # keys whose sandbox is starting
        self._reserved = 0  # slots of sandboxes being opened, one-off runs and asks
        self._lock = threading.Lock()
        self._opened = threading.Condition(self._lock)

    # -- slots --------------------------------------------------------------------------

    def reserve(self) -> None:
        with self._lock:
            if len(self._sessions) + self._reserved >= self.max_sessions:
                raise SessionLimit(
                    f"all {self.max_sessions} sandbox sessions this server allows are open: "
                    "close one with reset_session, or wait for a run to end"
                )
            self._reserved += 1

    def release(self) -> None:
        with self._lock:
            self._reserved -= 1

    def open_sandbox(self) -> Session:
        """A new sandbox, without a warm pool: nothing runs that no client asked for."""
        return open_session(self.kind, timeout=self.timeout, guard=self.guard, pool_size=0,
                            docker_host=self.docker_host, libraries=self.libraries)

    # -- sessions -----------------------------------------------------------------------

    def get(self, key: tuple[str, str]) -> ManagedSession | None:
        with self._lock:
            return self._sessions.get(key)

    def get_or_open(self, key: tuple[str, str]) -> ManagedSession:
        """The session under ``key``, opened if there is none (blocks: call it in a thread)."""
        with self._opened:
            while key in self._opening:  # a concurrent call is starting this very session
                self._opened.wait()
            found = self._sessions.get(key)
            if found is not None:
                return found
            self._opening.add(key)
        managed = None
        try:
            self.reserve()
            try:
                managed = ManagedSession(key, self.open_sandbox())
            finally:
                self.release()
            return managed
        finally:
            with self._opened:
                self._opening.discard(key)
                if managed is not None:
                    self._sessions[key] = managed
                self._opened.notify_all()

    def share(self, key: tuple[str, str]) -> str:
        """The token that reaches the session under ``key``, opened if there is none (blocks)."""
        managed = self.get_or_open(key)
        with self._lock:
            if self._sessions.get(key) is not managed:
                raise InputError("the session was closed while it was being shared; try again")
            if managed.token is None:
                managed.token = TOKEN_PREFIX + secrets.token_urlsafe(32)
                self._shared[_digest(managed.token)] = key
            return managed.token

    def shared_key(self, token: str) -> tuple[str, str] | None:
        """The key of the open session ``token`` reaches; None for a closed one or a wrong token."""
        with self._lock:
            return self._shared.get(_digest(token))

    def _forget(self, managed: ManagedSession) -> None:
        # Called with the lock held: the token of a closed session reaches nothing, ever again.
        if managed.token is not None:
            self._shared.pop(_digest(managed.token), None)

    def one_off(self) -> ManagedSession:
        """A session for one call only; the caller closes it (and releases its slot)."""
        self.reserve()
        try:
            return ManagedSession(("", ""), self.open_sandbox())
        except BaseException:
            self.release()
            raise

    def close(self, key: tuple[str, str]) -> bool:
        with self._lock:
            managed = self._sessions.pop(key, None)
            if managed is not None:
                self._forget(managed)
        if managed is None:
            return False
        managed.sandbox.interrupt()  # a run in progress ends as "stopped on request"
        managed.sandbox.close()
        return True

    def names(self, scope: str) -> list[str]:
        with self._lock:
            return sorted(name for s, name in self._sessions if s == scope)

    def close_idle(self, idle_for: float) -> list[tuple[str, str]]:
        now = time.monotonic()
        with self._lock:
            idle = [k for k, m in self._sessions.items() if not m.lock.locked() and now - m.last_used > idle_for]
        for key in idle:
            self.close(key)
        return idle

    def close_all(self) -> None:
        with self._lock:
            sessions, self._sessions, self._shared = list(self._sessions.values()), {}, {}
        for managed in sessions:
            managed.sandbox.interrupt()
            managed.sandbox.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


class IdleReaper:
    """Closes idle sessions every few seconds, in a thread of its own."""

    def __init__(self, registry: SessionRegistry, idle_for: float) -> None:
        self.registry = registry
        self.idle_for = idle_for
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mcp-idle-sessions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        interval = min(30.0, max(0.5, self.idle_for / 4))
        while not self._stop.wait(interval):
            self.registry.close_idle(self.idle_for)


async def in_thread(work: Callable[[Callable[[], bool]], T], stop: Callable[[], None]) -> T:
    """Runs ``work(cancelled)`` in a thread; if the tool call is cancelled, stops it.

    ``work`` gets a function that says whether the call was cancelled, to check
    before it starts anything.  On cancellation ``stop`` is called again and
    again from another thread until ``work`` has returned, so a run that was
    just starting when the cancel came is stopped too, and the sandbox never
    outlives the call.
    """
    cancelled = threading.Event()
    done = threading.Event()

    def run() -> T:
        try:
            return work(cancelled.is_set)
        finally:
            done.set()

    def stop_until_done() -> None:
        while not done.is_set():
            stop()
            done.wait(0.25)

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancelled.set()
        threading.Thread(target=stop_until_done, name="mcp-stop-run", daemon=True).start()
        raise
