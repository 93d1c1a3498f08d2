"""A runtime worker seen from the host: start, talk, kill.

Every sandbox kind ends in a runtime whose stdin and stdout carry the
protocol.  How those bytes travel is a ``Channel``: the pipes of a local
process (bubblewrap) or a socket (a Docker container's attach stream).  The
``Worker`` on top is the same for both: a reader thread turns the channel
into messages so the session can wait on them with a deadline, and killing
the channel is how a timeout ends a run.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
from typing import Callable

from ..errors import SandboxUnavailable
from ..sandbox_runtime import protocol

_CLOSED = object()


class WorkerDied(Exception):
    """The worker's channel closed (crash, OOM kill, or killed by us)."""


class ProcessChannel:
    """The stdin/stdout pipes of a local process (its own process group)."""

    def __init__(self, argv: list[str], *, env=None, preexec_fn=None, describe: str = "sandbox",
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.stderr_tail = b""
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                preexec_fn=preexec_fn,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
                cwd="/",  # nothing of the host's working directory reaches the sandbox
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start the {describe}: {exc}") from None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        # Only the sandbox launcher writes here (the runtime redirects its own
        # fds); keep the tail for error messages.
        try:
            for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
                self.stderr_tail = (self.stderr_tail + chunk)[-4096:]
        except (OSError, ValueError):
            pass

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def exit_note(self) -> str:
        code = self.proc.poll()
        if code is None and self.wait(2):
            code = self.proc.returncode
        if code is None:
            return "channel closed"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        self.wait(5)


class SocketChannel:
    """A stream socket to the runtime, e.g. the attach socket of a container without a TTY.

    ``multiplexed``: what comes back is framed as Docker frames a non-TTY
    attach stream: an 8-byte header (stream 1 stdout or 2 stderr, three zero
    bytes, big-endian length) before each chunk.  ``exit_note`` says how the
    runtime ended once the socket closed (the socket cannot tell).
    """

    def __init__(self, sock: socket.socket, *, exit_note: Callable[[], str], multiplexed: bool = True) -> None:
        self.sock = sock
        self.stderr_tail = b""
        self.proc = None
        self._exit_note = exit_note
        self._multiplexed = multiplexed
        self._buffer = bytearray()
        self._left = 0  # bytes of the current stdout frame not read yet
        self._ended = threading.Event()
        self.stdin, self.stdout = _SocketWriter(sock), self

    def _recv_into_buffer(self) -> bool:
        try:
            data = self.sock.recv(256 * 1024)
        except OSError:
            data = b""
        if not data:
            self._ended.set()
            return False
        self._buffer += data
        return True

    def _take(self, n: int) -> bytes | None:
        while len(self._buffer) < n:
            if not self._recv_into_buffer():
                return None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def read(self, n: int) -> bytes:
        """Up to n bytes of the runtime's stdout; b"" once the stream ended."""
        if not self._multiplexed:
            if not self._buffer and not self._recv_into_buffer():
                return b""
            return self._take(min(n, len(self._buffer))) or b""
        while self._left == 0:
            header = self._take(8)
            if header is None:
                return b""
            kind, size = header[0], int.from_bytes(header[4:8], "big")
            if kind == 1:
                self._left = size
                continue
            # stderr (docker-init, the interpreter before the runtime took its
            # fds): read in bounded pieces, only the tail is kept.
            while size:
                data = self._take(min(size, 65536))
                if data is None:
                    return b""
                size -= len(data)
                self.stderr_tail = (self.stderr_tail + data)[-4096:]
        if not self._buffer and not self._recv_into_buffer():
            return b""
        data = self._take(min(n, self._left, len(self._buffer))) or b""
        self._left -= len(data)
        return data

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    def wait(self, timeout: float) -> bool:
        return self._ended.wait(timeout)

    def exit_note(self) -> str:
        return self._exit_note()

    def kill(self) -> None:
        # shutdown() first: close() alone does not wake a thread blocked in recv().
        self._ended.set()
        for end in (lambda: self.sock.shutdown(socket.SHUT_RDWR), self.sock.close):
            try:
                end()
            except OSError:
                pass


class _SocketWriter:
    def __init__(self, sock) -> None:
        self._sock = sock

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Worker:
    """The protocol over a channel: a process started from ``argv``, or the given ``channel``."""

    container: str | None = None  # the Docker container's id, for workers that are one

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
        if channel is None:
            channel = ProcessChannel(argv, env=env, preexec_fn=preexec_fn, describe=describe, pass_fds=pass_fds)
        self.channel = channel
        self.proc = channel.proc  # the local process, None over a socket
        self._messages: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{describe}-reader", daemon=True)
        self._reader.start()

    # -- reading --------------------------------------------------------------

    def _read(self) -> None:
        try:
            while True:
                self._messages.put(protocol.read_message(self.channel.stdout))
        except (protocol.ProtocolError, OSError, ValueError):
            self._messages.put(_CLOSED)

    def receive(self, timeout: float | None = None) -> tuple[dict, list[bytes]]:
        """Next message; raises TimeoutError, or WorkerDied when the channel closed."""
        try:
            item = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if item is _CLOSED:
            self._messages.put(_CLOSED)  # later calls see it too
            raise WorkerDied(self.death_note())
        return item

    def wait_ready(self, timeout: float) -> None:
        try:
            header, _ = self.receive(timeout)
        except TimeoutError:
            self.kill()
            raise SandboxUnavailable(f"the {self.describe} did not start within {timeout:.0f} s") from None
        except WorkerDied as exc:
            raise SandboxUnavailable(f"the {self.describe} failed to start: {exc}") from None
        if header.get("op") != "ready":
            self.kill()
            raise SandboxUnavailable(f"the {self.describe} sent {header.get('op')!r} instead of ready")

    def death_note(self) -> str:
        tail = self.channel.stderr_tail.decode("utf-8", "replace").strip().splitlines()
        detail = f": {tail[-1]}" if tail else ""
        return f"{self.channel.exit_note()}{detail}"

    # -- writing and lifetime ---------------------------------------------------

    def send(self, header: dict, blobs=()) -> None:
        try:
            protocol.write_message(self.channel.stdin, header, blobs)
        except (BrokenPipeError, OSError, ValueError):
            raise WorkerDied(self.death_note()) from None

    @property
    def pid(self) -> int | None:
        """The host pid of the worker's process (bubblewrap); None over a socket (Docker)."""
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.channel.alive

    def kill(self) -> None:
        """Ends the worker and everything it started; safe to call twice."""
        self.channel.kill()
        if self._on_kill is not None:
            on_kill, self._on_kill = self._on_kill, None
            on_kill()
        # The reader thread owns stdout and sees EOF now.
        try:
            self.channel.stdin.close()
        except Exception:
            pass

    def close(self, grace: float = 0.5) -> None:
        if self.alive:
            try:
                self.send({"op": "close"})
                self.channel.wait(grace)
            except WorkerDied:
                pass
        self.kill()
