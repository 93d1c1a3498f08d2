"""How a worker's bytes travel: the pipes of a local process (bubblewrap) or a
socket (a Docker container's attach stream).  ``Worker`` (worker.py) is the same
on top of either; every write has a deadline there, so a channel only moves bytes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from typing import Callable

from ..errors import SandboxUnavailable


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
        os.set_blocking(self.stdin.fileno(), False)  # writes wait in poll(), with a deadline
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write_some(self, data) -> int:
        """Writes what fits now; BlockingIOError when nothing does."""
        return os.write(self.stdin.fileno(), data)

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

    pid: int | None = None  # no host process of ours behind a container's socket

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
            # stderr (the broker's, or Python's before the broker runs):
            # Read in bounded pieces, only the tail is kept.
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

    def write_some(self, data) -> int:
        """Writes what fits now; BlockingIOError when nothing does (the socket
        itself stays blocking for the reader)."""
        return self.sock.send(data, socket.MSG_DONTWAIT)

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
