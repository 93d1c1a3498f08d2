"""A runtime worker process seen from the host: spawn, talk, kill.

Every sandbox kind (bubblewrap, Docker) ends in a process whose stdin and
stdout carry the protocol.  A reader thread turns stdout into messages so the
session can wait on them with a deadline; killing the process is how a
timeout ends a run.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from typing import Callable

from ..errors import SandboxUnavailable
from ..sandbox_runtime import protocol

_CLOSED = object()


class WorkerDied(Exception):
    """The worker's channel closed (crash, OOM kill, or killed by us)."""


class Worker:
    container: str | None = None  # the Docker container's name, for workers that are one

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict | None = None,
        preexec_fn: Callable[[], None] | None = None,
        on_kill: Callable[[], None] | None = None,
        describe: str = "sandbox",
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.describe = describe
        self._on_kill = on_kill
        self._stderr_tail = b""
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
        self._messages: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{describe}-reader", daemon=True)
        self._reader.start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()

    # -- reading --------------------------------------------------------------

    def _read(self) -> None:
        try:
            while True:
                self._messages.put(protocol.read_message(self.proc.stdout))
        except (protocol.ProtocolError, OSError, ValueError):
            self._messages.put(_CLOSED)

    def _read_stderr(self) -> None:
        # Only the sandbox launcher writes here (the runtime redirects its own
        # fds); keep the tail for error messages.
        try:
            for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
                self._stderr_tail = (self._stderr_tail + chunk)[-4096:]
        except (OSError, ValueError):
            pass

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
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        tail = self._stderr_tail.decode("utf-8", "replace").strip().splitlines()
        detail = f": {tail[-1]}" if tail else ""
        if code is None:
            return f"channel closed{detail}"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}{detail}"
        return f"exited with status {code}{detail}"

    # -- writing and lifetime ---------------------------------------------------

    def send(self, header: dict, blobs=()) -> None:
        try:
            protocol.write_message(self.proc.stdin, header, blobs)
        except (BrokenPipeError, OSError, ValueError):
            raise WorkerDied(self.death_note()) from None

    @property
    def pid(self) -> int:
        """The host pid of the worker's process (bubblewrap, or the docker CLI)."""
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Ends the worker and everything it started; safe to call twice."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._on_kill is not None:
            on_kill, self._on_kill = self._on_kill, None
            on_kill()
        # stdout and stderr belong to the reader threads, which see EOF now.
        try:
            self.proc.stdin.close()
        except Exception:
            pass

    def close(self, grace: float = 0.5) -> None:
        if self.alive:
            try:
                self.send({"op": "close"})
                self.proc.wait(timeout=grace)
            except (WorkerDied, subprocess.TimeoutExpired):
                pass
        self.kill()
