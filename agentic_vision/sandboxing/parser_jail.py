"""A child process for parsing untrusted bytes (PDFium on a client's PDF), not the host.

The child runs the host's own Python (so a plain pip install is enough) with
a program given as ``-c`` text, under every layer this machine allows:

- bubblewrap where it works (as the local sandbox starts it, root dropping
  to an unprivileged uid first): new user, pid, network, ipc and uts
  namespaces, nothing of the host's files but /usr, the interpreter and a
  few of /etc, no environment;
- always, taken by the child itself before it reads the input: hard
  rlimits on address space (``AGENTIC_VISION_RENDER_MEMORY_MB``) and CPU
  time (``AGENTIC_VISION_RENDER_SECONDS``), no files written, no new
  processes; root gives up its uid; no_new_privs; and the project's seccomp
  filter with sockets of AF_UNIX only (no network even without namespaces).

Without bubblewrap and without seccomp the jail refuses, as the local
sandbox does, unless AGENTIC_VISION_ALLOW_WEAK_SANDBOX=1.  The host gives
the input through a sealed memfd and reads length-prefixed frames from the
child's stdout with a wall deadline, a cap on everything it sends, and a
``stop`` event (the request was cancelled): any of them kills the child at
once.  Nothing the child sends is unpickled; callers parse JSON and check
images.  At most ``SLOTS`` children run at once (no global lock).
"""

from __future__ import annotations

import base64
import fcntl
import functools
import importlib.util
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, SandboxUnavailable
from . import seccomp
from .inside_paths import inside_paths, inside_python, interpreter_roots
from .launcher import Launcher, drop_problem

MEMORY_SETTING = "AGENTIC_VISION_RENDER_MEMORY_MB"
SECONDS_SETTING = "AGENTIC_VISION_RENDER_SECONDS"
WEAK_SETTING = "AGENTIC_VISION_ALLOW_WEAK_SANDBOX"
DEFAULT_MEMORY_MB = 1024
DEFAULT_SECONDS = 60
MAX_OUTPUT = 256 * 2**20  # everything one child may send
SLOTS = max(2, os.cpu_count() or 1)
_slots = threading.BoundedSemaphore(SLOTS)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime")
_POLL = 0.05


def _setting(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise InputError(f"{name}={text!r} is not a positive whole number: fix or unset it")
    return int(text)


@dataclass(frozen=True)
class JailLimits:
    memory_bytes: int
    cpu_seconds: int
    wall_seconds: float
    max_output: int = MAX_OUTPUT

    @classmethod
    def from_env(cls) -> "JailLimits":
        seconds = _setting(SECONDS_SETTING, DEFAULT_SECONDS)
        # The wall deadline leaves room for the start and for a machine under load.
        return cls(_setting(MEMORY_SETTING, DEFAULT_MEMORY_MB) * 2**20, seconds, seconds * 1.5 + 5)


@functools.lru_cache(maxsize=1)
def _bwrap() -> tuple[str, bool] | None:
    """(bubblewrap, drop root first) when bubblewrap can make its namespaces here."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    if os.geteuid() == 0:
        return (bwrap, True) if drop_problem(bwrap) is None else None
    try:
        done = subprocess.run([bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return (bwrap, False) if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def _filter() -> bytes:
    """The seccomp program (sockets: AF_UNIX only), or b"" where libseccomp is missing."""
    try:
        return seccomp.bpf_for_bwrap((seccomp.AF_UNIX,))
    except seccomp.SeccompUnavailable:
        return b""


def describe() -> str:
    """Which layers hold, for ``sandbox info``-style reports and the tests."""
    layers = ["rlimits", "no_new_privs"]
    if _filter():
        layers.append("seccomp")
    if _bwrap():
        layers.insert(0, "bubblewrap")
    return " + ".join(layers)


def module_dirs(modules: tuple[str, ...]) -> list[str]:
    """The sys.path entries the child needs for ``modules`` (a venv may find them through .pth files)."""
    dirs = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SandboxUnavailable(f"{name} is not installed: reinstall agentic-vision")
        where = str(Path(spec.origin).resolve().parent.parent)
        if where not in dirs:
            dirs.append(where)
    return dirs


def describe_limits() -> str:
    try:
        limits = JailLimits.from_env()
    except InputError as exc:
        return f"{describe()}; {exc}"
    return (f"{describe()}: {limits.memory_bytes // 2**20} MiB ({MEMORY_SETTING}), {limits.cpu_seconds} s of CPU "
            f"({SECONDS_SETTING}), {SLOTS} at once")


def _command(program: str, modules: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """argv, and the fds it must inherit besides the input's."""
    found = _bwrap()
    if found is None:
        if not _filter() and os.environ.get(WEAK_SETTING) != "1":
            raise SandboxUnavailable(
                "PDFs are rendered in a jailed process, which needs bubblewrap or libseccomp here: install "
                f"bubblewrap or libseccomp2, or set {WEAK_SETTING}=1 to render with rlimits only")
        return [sys.executable, "-I", "-c", program], []
    bwrap, drop = found
    launcher = Launcher(bwrap, drop=drop)
    launcher.prepare()
    roots = list(interpreter_roots(sys.executable))
    mapping = inside_paths(roots)
    args = ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv", "--disable-userns",
            "--cap-drop", "ALL", "--dev", "/dev", "--size", str(16 * 2**20), "--tmpfs", "/tmp"]
    for top in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    libraries = module_dirs(modules)
    inside = [f"/opt/agentic-vision/lib/{i}" for i in range(len(libraries))]
    staged = launcher.stage(roots + libraries)
    for host, target in [*mapping.items(), *zip(libraries, inside)]:
        args += ["--ro-bind", staged[host], target]
    # The libraries' folders come first on the child's path, as they do on the host's.
    program = f"import sys; sys.path[:0] = {inside!r}\n{program}"
    args += ["--remount-ro", "/", "--chdir", "/", "--setenv", "LANG", "C.UTF-8",
             "--", inside_python(Path(sys.executable), mapping), "-I", "-c", program]
    launch = launcher.launch(args, [], roots + libraries, [])
    return launch.argv, launch.fds


class ParserJail:
    """One child: ``start``, then ``frame()`` until done, then ``finish()``; ``close`` kills it.

    ``what`` names the input in every error (one line, naming the setting that holds)."""

    def __init__(self, program: str, what: str, *, modules: tuple[str, ...] = (),
                 stop: threading.Event | None = None, limits: JailLimits | None = None) -> None:
        self.program = program
        self.modules = modules  # what the program imports besides the standard library
        self.what = what
        self.stop = stop
        self.limits = limits or JailLimits.from_env()
        self.proc: subprocess.Popen | None = None
        self.killed: str | None = None  # why we killed it: "deadline", "output", "stopped"
        self.buffer = bytearray()
        self.received = 0
        self.stderr = b""
        self.deadline = 0.0
        self._slot = False
        self._fds: list[int] = []

    def __enter__(self) -> "ParserJail":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- starting ---------------------------------------------------------------------------

    def _acquire(self) -> None:
        waited = time.monotonic() + self.limits.wall_seconds
        while not _slots.acquire(timeout=_POLL):
            if self.stop is not None and self.stop.is_set():
                raise InputError(f"{self.what}: stopped before rendering (the request was cancelled)")
            if time.monotonic() > waited:
                raise InputError(f"{self.what}: the PDF renderer is busy ({SLOTS} renders at once): try again")
        self._slot = True

    def start(self, settings: dict, data: bytes) -> None:
        self._acquire()
        memfd = os.memfd_create("agentic-vision-input", os.MFD_ALLOW_SEALING)
        self._fds.append(memfd)
        view, written = memoryview(data), 0
        while written < len(view):  # os.write may write less than asked
            written += os.write(memfd, view[written:])
        # Sealed: the child reads the input, it cannot change what the host holds.
        fcntl.fcntl(memfd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        os.lseek(memfd, 0, os.SEEK_SET)
        argv, fds = _command(self.program, self.modules)
        self._fds += fds
        self.deadline = time.monotonic() + self.limits.wall_seconds
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env={}, cwd="/", start_new_session=True, close_fds=True,
                                         pass_fds=tuple(self._fds))
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start the PDF renderer: {exc}") from None
        finally:
            self._close_fds()
        line = json.dumps({**settings, "fd": memfd, "memory_bytes": self.limits.memory_bytes,
                           "cpu_seconds": self.limits.cpu_seconds, "seccomp": _b64(_filter())})
        self.send_line(line)

    def send(self, message: dict) -> None:
        """A JSON line to the child (small: it fits the pipe, so this never blocks)."""
        self.send_line(json.dumps(message))

    def send_line(self, line: str) -> None:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: frame() says why

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    # -- reading ----------------------------------------------------------------------------

    def frame(self) -> bytes:
        """The next frame; the end of the output, a deadline or a cap raise InputError."""
        while True:
            if len(self.buffer) >= 4:
                (size,) = struct.unpack(">I", self.buffer[:4])
                if size > self.limits.max_output:
                    self._kill("output")
                    raise self._error()
                if len(self.buffer) >= 4 + size:
                    with memoryview(self.buffer) as view:  # one copy of a page, not two
                        data = bytes(view[4:4 + size])
                    del self.buffer[:4 + size]
                    return data
            if not self._read():
                raise self._error()

    def _read(self) -> bool:
        """Reads what the child wrote; False at the end of its output (or once killed)."""
        out, err = self.proc.stdout, self.proc.stderr
        while self.killed is None:
            if self.stop is not None and self.stop.is_set():
                self._kill("stopped")
                break
            if time.monotonic() > self.deadline:
                self._kill("deadline")
                break
            ready, _, _ = select.select([out, err] if err is not None else [out], [], [], _POLL)
            if err is not None and err in ready:
                chunk = os.read(err.fileno(), 65536)
                if chunk:
                    self.stderr = (self.stderr + chunk)[-2000:]
                else:
                    err = None
            if out in ready:
                chunk = os.read(out.fileno(), 1 << 20)
                if not chunk:
                    return False
                self.received += len(chunk)
                if self.received > self.limits.max_output:
                    self._kill("output")
                    break
                self.buffer += chunk
                return True
        return False

    def finish(self) -> None:
        """After the last frame: the child must exit by itself, soon."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.close()

    # -- ending -----------------------------------------------------------------------------

    def _kill(self, why: str) -> None:
        self.killed = self.killed or why
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # bubblewrap's own child dies with it
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.kill()
            except OSError:
                pass

    def _status(self) -> int | None:
        try:
            return self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._kill("deadline")
            return self.proc.wait()

    def _error(self) -> InputError:
        """Why the output ended early, as one line naming the cap."""
        status = self._status()
        lim = self.limits
        if self.killed == "stopped":
            return InputError(f"{self.what}: rendering stopped (the request was cancelled)")
        if self.killed == "deadline":
            return InputError(f"{self.what} was not rendered within {lim.wall_seconds:g} s: set {SECONDS_SETTING} "
                              "higher if you trust the file")
        if self.killed == "output":
            return InputError(f"{self.what}: the rendered pages are over {lim.max_output // 2**20} MiB: ask for "
                              "fewer pages (--page)")
        # bubblewrap reports a child killed by a signal as 128 + the signal.
        signum = -status if status is not None and status < 0 else (status - 128 if status and status > 128 else 0)
        if signum in (signal.SIGXCPU, signal.SIGKILL):
            return InputError(f"{self.what} needs more than {lim.cpu_seconds} s of CPU time to render: set "
                              f"{SECONDS_SETTING} higher if you trust the file")
        if status == 3 or signum in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGTRAP):
            return self.over_memory(" (or crashed the renderer)")
        detail = " ".join(self.stderr.decode("utf-8", "replace").split()[-12:])
        return InputError(f"{self.what} could not be rendered (the renderer stopped with status {status}"
                          f"{': ' + detail if detail else ''}): check the file")

    def over_memory(self, also: str = "") -> InputError:
        return InputError(f"{self.what} needs more than {self.limits.memory_bytes // 2**20} MiB of memory to "
                          f"render{also}: set {MEMORY_SETTING} higher if you trust the file")

    def close(self) -> None:
        self._close_fds()
        if self.proc is not None:
            if self.proc.poll() is None:
                self._kill(self.killed or "closed")
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except (OSError, AttributeError):
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._slot:
            self._slot = False
            _slots.release()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
