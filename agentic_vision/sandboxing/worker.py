"""A sandbox seen from the host: start, talk, kill.

Every sandbox kind ends in a broker whose stdin and stdout carry the
protocol.  How those bytes travel is a channel: the pipes of a local process
(bubblewrap) or a socket (a Docker container's attach stream).  The
``Worker`` on top is the same for both, and trusts nothing it reads,
whatever the broker checked: a reader thread accepts a reply only while a
request waits for it (``Exchange``), checks it with the protocol's schema
and limits before keeping any of it, keeps a run's output up to the cap and
drops the rest as it arrives, and holds at most one reply.  Anything else
(an unsolicited frame, a malformed or oversized one) kills the sandbox at
once: the session reports it and starts a fresh one.  Every write has a
deadline, so a sandbox that stops reading cannot hang the host.
"""

from __future__ import annotations

import select
import threading
import time
from typing import Callable, Iterable

from ..errors import SandboxUnavailable
from ..sandbox_runtime import protocol
from .channels import ProcessChannel, SocketChannel


class WorkerDied(Exception):
    """The worker's channel closed (crash, OOM kill, or killed by us)."""


class SandboxViolation(WorkerDied):
    """The sandbox sent something the protocol does not allow; it was killed."""


class Exchange:
    """One request: the replies that end it, and (for a run) its output, capped.

    Output is kept in arrival order with its stream; with ``streaming`` the
    chunks also wait in ``pending`` for the requesting thread to pass on
    (``Worker.request(on_output=...)``).
    """

    def __init__(self, replies: Iterable[str], output_limit: int = 0, streaming: bool = False) -> None:
        self.replies = frozenset(replies)
        self.accepts = self.replies | ({"output"} if output_limit else frozenset())
        self.output_limit = output_limit
        self.streaming = streaming
        self.chunks: list[tuple[str, str]] = []  # (stream, text)
        self.pending: list[tuple[str, str]] = []
        self.size = 0
        self.dropped = 0

    def add_output(self, text: str, stream: str = "stdout") -> None:
        room = self.output_limit - self.size
        if len(text) > room:
            self.dropped += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        if text:
            self.chunks.append((stream, text))
            self.size += len(text)
            if self.streaming:
                self.pending.append((stream, text))

    def take_pending(self) -> list[tuple[str, str]]:
        pending, self.pending = self.pending, []
        return pending

    @property
    def output(self) -> str:
        return "".join(text for _, text in self.chunks)

    def text_of(self, stream: str) -> str:
        return "".join(text for s, text in self.chunks if s == stream)


class Worker:
    """The protocol over a channel: a process started from ``argv``, or the given ``channel``."""

    container: str | None = None  # the Docker container's id, for workers that are one
    cold_start = False  # started for the session that took it, not waiting in the pool

    def __init__(
        self,
        argv: list[str] | None = None,
        *,
        channel: ProcessChannel | SocketChannel | None = None,
        env: dict | None = None,
        preexec_fn: Callable[[], None] | None = None,
        on_kill: Callable[[], None] | None = None,
        describe: str = "sandbox",
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.describe = describe
        self._on_kill = on_kill
        self._kill_lock = threading.Lock()
        self._cond = threading.Condition()
        self._exchange: Exchange | None = Exchange({"ready"})
        self._reply: tuple[dict, list[bytes]] | None = None
        self._closed = False
        self._ended: tuple[type, str] | None = None  # how the sandbox ended on its own, if it did
        if channel is None:
            channel = ProcessChannel(argv, env=env, preexec_fn=preexec_fn, describe=describe, pass_fds=pass_fds)
        self.channel = channel
        self.proc = channel.proc  # the local process, None over a socket
        self._reader = threading.Thread(target=self._read, name=f"{describe}-reader", daemon=True)
        self._reader.start()

    # -- reading --------------------------------------------------------------

    def _accepts(self) -> frozenset:
        exchange = self._exchange
        return (exchange.accepts if exchange is not None else frozenset()) | {"died"}

    def _read(self) -> None:
        try:
            while True:
                header, blobs = protocol.read_reply(self.channel.stdout, self._accepts)
                op = header["op"]
                if op == "died":
                    # The broker's own verdict on the interpreter (or a forged one:
                    # either way the sandbox is finished).
                    self._end(SandboxViolation if header["violation"] else WorkerDied, header["message"])
                    return
                with self._cond:
                    exchange = self._exchange
                    if exchange is None:  # the request was given up (timeout): drop what is late
                        continue
                    if op == "output":
                        exchange.add_output(header["data"], header.get("stream", "stdout"))
                        if exchange.streaming:
                            self._cond.notify_all()
                        continue
                    self._exchange = None  # one reply per request
                    self._reply = (header, blobs)
                    self._cond.notify_all()
        except protocol.InvalidMessage as exc:
            self._end(SandboxViolation, str(exc))
        except (protocol.ChannelClosed, OSError, ValueError):
            self._end(None, "")

    def _end(self, kind: type | None, message: str) -> None:
        with self._cond:
            if kind is not None and self._ended is None:
                self._ended = (kind, message)
            self._closed = True
            self._cond.notify_all()
        if kind is not None:
            # Stop it now: an unsolicited or invalid frame means nothing more is read.
            self.kill()

    def _death(self) -> WorkerDied:
        if self._ended is not None:
            kind, message = self._ended
            return kind(message)
        return WorkerDied(self.death_note())

    @property
    def failure(self) -> str:
        """Why the worker ended, as a clause: "the sandbox sent an invalid message (...)"."""
        death = self._death()
        if isinstance(death, SandboxViolation):
            return f"the sandbox sent an invalid message ({death})"
        return f"the sandbox process died ({death})"

    def _wait(self, deadline: float, on_output: Callable[[str, str], None] | None = None,
              exchange: Exchange | None = None) -> tuple[dict, list[bytes]]:
        """The reply, once it came; ``on_output(stream, text)`` gets the exchange's
        output chunks meanwhile, in this (the requesting) thread, outside the lock."""
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._reply is not None or self._closed or (on_output is not None and exchange.pending),
                    max(0.0, deadline - time.monotonic()),
                )
                chunks = exchange.take_pending() if on_output is not None else []
                if not chunks:
                    if self._reply is not None:
                        reply, self._reply = self._reply, None
                        return reply
                    if self._closed:
                        raise self._death()
                    if time.monotonic() >= deadline:
                        raise TimeoutError
                    continue
            for stream, text in chunks:
                on_output(stream, text)

    def wait_ready(self, timeout: float) -> None:
        try:
            self._wait(time.monotonic() + timeout)
        except TimeoutError:
            self.kill()
            raise SandboxUnavailable(f"the {self.describe} did not start within {timeout:.0f} s") from None
        except WorkerDied as exc:
            self.kill()
            raise SandboxUnavailable(f"the {self.describe} failed to start: {exc}") from None

    def death_note(self) -> str:
        tail = self.channel.stderr_tail.decode("utf-8", "replace").strip().splitlines()
        detail = f": {tail[-1][:300]}" if tail else ""
        return f"{self.channel.exit_note()}{detail}"

    # -- requests -------------------------------------------------------------------

    def request(self, exchange: Exchange, header: dict, blobs=(), *, timeout: float,
                on_output: Callable[[str, str], None] | None = None) -> tuple[dict, list[bytes]]:
        """Sends a request and waits for the reply that ends ``exchange``, all within ``timeout``;
        ``on_output(stream, text)`` gets its output as it arrives (``exchange.streaming``).

        Raises TimeoutError (the caller kills the worker), WorkerDied, or
        SandboxViolation (the worker is dead already); whatever ``on_output`` raises.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise self._death()
            self._exchange, self._reply = exchange, None
        self._write(protocol.encode_message(header, blobs), deadline)
        return self._wait(deadline, on_output if exchange.streaming else None, exchange)

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        poller = select.poll()
        try:
            poller.register(self.channel.stdin.fileno(), select.POLLOUT)
            while view:
                try:
                    view = view[self.channel.write_some(view[: 1 << 20]) :]
                    continue
                except BlockingIOError:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                poller.poll(min(remaining, 1.0) * 1000)
                if self._closed:
                    raise self._death()
        except TimeoutError:  # an OSError too, but not a death
            raise
        except (BrokenPipeError, OSError, ValueError):
            raise self._death() from None

    @property
    def pid(self) -> int | None:
        """The host pid of the worker's process (bubblewrap, or a forked session's first
        process); None over a container's socket (Docker)."""
        return self.channel.pid

    @property
    def alive(self) -> bool:
        return not self._closed and self.channel.alive

    def kill(self) -> None:
        """Ends the worker and everything it started; safe to call twice, from any thread."""
        with self._kill_lock:
            self.channel.kill()
            on_kill, self._on_kill = self._on_kill, None
        if on_kill is not None:
            on_kill()
        # The reader thread owns stdout and sees EOF now.  The reader (killing on
        # a violation) leaves stdin open: the session may be writing to it, and
        # a closed fd number could be reused.
        if threading.current_thread() is not self._reader:
            try:
                self.channel.stdin.close()
            except Exception:
                pass

    def close(self, grace: float = 0.5) -> None:
        if self.alive:
            try:
                self._write(protocol.encode_message({"op": "close"}), time.monotonic() + grace)
                self.channel.wait(grace)
            except (WorkerDied, TimeoutError):
                pass
        self.kill()
