"""Local sessions forked from a template, seen from the host.

A cold local sandbox spends about half a second starting Python and
importing numpy, PIL, cv2 and matplotlib.  ``Template`` starts that once: a
bubblewrap sandbox running ``sandbox/template.py``, which has the libraries
imported and forks each session into new namespaces of its own (see that
file for what a session gets and what it shares).  The host keeps what makes
a session separate: its cgroup (the session's first process is moved into
it before it starts anything), its limits, the kill.

Per session, the host makes a socket pair (the session's channel, which the
``Worker`` speaks the protocol over) and a pipe (how the session ended, from
the monitor that waits for it), and passes one end of each to the template.
The session's first message carries its host pid in the kernel's
credentials (SO_PASSCRED), never in what it says.
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import struct
import threading

from ..errors import InputError, SandboxUnavailable
from .channels import ProcessChannel, SocketChannel
from .worker import Worker

STATUS_WAIT = 5.0
START_SETTING = "AGENTIC_VISION_SANDBOX_START"


def cold_start_setting(start: str | None = None) -> str | None:
    """Why sessions start cold by choice (``start="cold"``, else AGENTIC_VISION_SANDBOX_START=cold),
    or None; any other value is a one-line InputError naming where it came from."""
    name = "start" if start is not None else START_SETTING
    value = (start if start is not None else os.environ.get(START_SETTING, "")).strip().lower()
    if value in ("", "template"):
        return None
    if value == "cold":
        return "start='cold'" if start is not None else f"{START_SETTING}=cold"
    raise InputError(f"{name} must be 'template' or 'cold', not {value!r}")


def session_request(limits, cgroup) -> dict:
    """What the template needs to make one session: its rlimits and folder sizes (the
    rlimits are a cold start's too)."""
    rlimits = limits.rlimits(with_cgroup_memory=cgroup is not None)
    if cgroup is not None:
        # The pids cgroup holds per session; RLIMIT_NPROC would count every
        # process of the (shared) sandbox uid on the host.
        rlimits.pop("RLIMIT_NPROC", None)
    tmpfs = [["/work", limits.workdir_bytes], ["/tmp", limits.tmp_bytes], ["/dev/shm", limits.shm_bytes]]
    return {"rlimits": rlimits, "tmpfs": tmpfs}


class TemplateUnavailable(SandboxUnavailable):
    """The template cannot start or fork here (e.g. no nested user namespaces): start cold."""


class ForkedChannel(SocketChannel):
    """The session's socket, with the host's hold on its first process (a pidfd) and the
    monitor's pipe that says how it ended."""

    def __init__(self, sock: socket.socket, pid: int, pidfd: int, status_fd: int) -> None:
        super().__init__(sock, exit_note=self._status, multiplexed=False)
        self.pid = pid
        self._pidfd = pidfd
        self._status_fd = status_fd
        self._note: str | None = None
        self._pid_lock = threading.Lock()  # the pidfd: signalled, polled, closed
        self._status_lock = threading.Lock()  # the status pipe: read once, closed

    def _exited(self, timeout: float) -> bool:
        with self._pid_lock:
            fd = self._pidfd
            if fd < 0:
                return True
            if timeout == 0:
                return bool(select.select([fd], [], [], 0)[0])
        # Waiting outside the lock; a pidfd closed meanwhile means the process was killed.
        try:
            return bool(select.select([fd], [], [], timeout)[0])
        except (OSError, ValueError):
            return True

    @property
    def alive(self) -> bool:
        return super().alive and not self._exited(0)

    def wait(self, timeout: float) -> bool:
        return self._exited(timeout)

    def _status(self) -> str:
        """How the first process ended, from the monitor (waiting for it a little)."""
        with self._status_lock:
            if self._note is None and self._status_fd >= 0:
                if select.select([self._status_fd], [], [], STATUS_WAIT)[0]:
                    self._note = os.read(self._status_fd, 200).decode("utf-8", "replace") or None
                os.close(self._status_fd)
                self._status_fd = -1
            return self._note or "channel closed"

    def kill(self) -> None:
        with self._pid_lock:
            if self._pidfd >= 0:
                try:
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        super().kill()
        # The monitor writes once the whole pid namespace is gone (its init's exit
        # waits for every other process in it): then the cgroup is empty.
        self._status()
        with self._pid_lock:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1


class Template:
    """One template sandbox: started by ``start`` (from the executor's spawner thread,
    since bubblewrap dies with the thread that started it), then ``fork`` per session."""

    def __init__(self, argv: list[str], fds: list[int], control: socket.socket, uid: int) -> None:
        self.uid = uid  # the host uid every session runs as
        self.control = control
        self._send_lock = threading.Lock()
        try:
            # Its stdin and stdout go unused (the control socket carries everything); its
            # stderr's tail says why it failed.
            self.process = ProcessChannel(argv, describe="sandbox template", pass_fds=tuple(fds))
        except SandboxUnavailable as exc:
            raise TemplateUnavailable(str(exc)) from None

    @property
    def pid(self) -> int:
        """The host pid of its bubblewrap."""
        return self.process.pid

    def wait_ready(self, timeout: float) -> dict:
        """The template's hello once its imports are done, or TemplateUnavailable."""
        if not select.select([self.control], [], [], timeout)[0]:
            self.kill()
            raise TemplateUnavailable(f"the sandbox template did not start within {timeout:.0f} s")
        data = self.control.recv(65536)
        try:
            hello = json.loads(data) if data else {}
        except ValueError:
            hello = {}
        if hello.get("op") != "ready":
            if not data:  # it ended: let its last words reach the stderr tail
                self.process.wait(5)
            detail = hello.get("message") or self._last_line() or "it ended"
            self.kill()
            raise TemplateUnavailable(f"the sandbox template failed to start: {detail}")
        return hello

    def _last_line(self) -> str:
        lines = self.process.stderr_tail.decode("utf-8", "replace").strip().splitlines()
        return lines[-1][:300] if lines else ""

    @property
    def alive(self) -> bool:
        return self.process.alive

    def fork(self, request: dict, cgroup, timeout: float) -> Worker:
        """A new session forked from the template, in ``cgroup`` (or none) before it starts anything."""
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        try:
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            payload = json.dumps(request).encode()
            fds = array.array("i", [child.fileno(), status_w])
            with self._send_lock:
                try:
                    self.control.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                except OSError as exc:
                    raise TemplateUnavailable(f"the sandbox template is gone ({exc})") from None
        except BaseException:
            for end in (host.close, child.close, lambda: os.close(status_r), lambda: os.close(status_w)):
                end()
            raise
        child.close()
        os.close(status_w)
        try:
            pid = self._hello(host, timeout)
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # reset, or gone between its hello and here
            host.close()
            os.close(status_r)
            raise SandboxUnavailable(f"the local sandbox ended as it started ({exc})") from None
        except BaseException:
            host.close()
            os.close(status_r)
            raise
        channel = ForkedChannel(host, pid, pidfd, status_r)
        try:
            if cgroup is not None:
                for procs in cgroup.procs_files:
                    with open(procs, "w") as f:
                        f.write(str(pid))
            host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
            host.sendall(b"G")
        except OSError as exc:
            channel.kill()
            raise SandboxUnavailable(f"the local sandbox could not be placed in its cgroup: {exc}") from None
        return Worker(channel=channel, on_kill=cgroup.remove if cgroup else None, describe="local sandbox")

    def _hello(self, host: socket.socket, timeout: float) -> int:
        """The session's host pid, from the kernel's credentials on its first message."""
        if not select.select([host], [], [], timeout)[0]:
            raise SandboxUnavailable(f"the local sandbox did not start within {timeout:.0f} s")
        data, ancillary, _, _ = host.recvmsg(600, socket.CMSG_SPACE(12))
        if not data:
            raise TemplateUnavailable("the sandbox template ended a session before it started")
        if data.startswith(b"E"):
            raise TemplateUnavailable(data[1:].decode("utf-8", "replace"))
        for level, kind, body in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(body) >= 12:
                pid, uid, _ = struct.unpack("iII", body[:12])
                if data == b"H" and uid == self.uid and pid > 0:
                    return pid
        raise SandboxUnavailable("the local sandbox's first message was not its hello")

    def kill(self) -> None:
        self.process.kill()
        self.control.close()
