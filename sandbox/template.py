"""The template: one process with the libraries imported, from which sessions are forked.

Starting a session cold (bubblewrap, a new Python, numpy, PIL, cv2 and
matplotlib imported) takes about half a second; forking a process that has
done all that takes milliseconds.  The host starts this file once per local
executor, in a bubblewrap sandbox like a session's (the same read-only view,
no network, its own pid namespace, unprivileged), and asks it for sessions
over a control socket.  Model code never runs here, and no session can see
or reach this process: each one is forked into namespaces of its own.

For each request (a socket to the host and a pipe for the exit status,
passed as SCM_RIGHTS, and the session's limits) the template forks:

* a monitor, which makes new user, mount, pid, network, IPC, UTS and cgroup
  namespaces, forks the session's first process, waits for it and writes how
  it ended to the status pipe (the host cannot wait for a process it did not
  start).  It holds nothing of the session's but that pipe;
* the session's first process (pid 1 of its pid namespace), which mounts its
  own /proc (``/proc/sys`` read-only, no user namespace allowed below its
  own), size-capped tmpfs on /work, /tmp and /dev/shm, brings its
  loopback up, says hello to the host (whose kernel tells it this process's
  host pid, to move it into the session's cgroup and to kill it), waits for
  the go, sets its rlimits, drops every capability, sets no_new_privs, loads
  the seccomp filter and becomes the broker (broker.py).  The broker forks
  the interpreter, as it would have started it.

What a forked session shares with its siblings is only what the template
held before the fork, read-only in effect (copy-on-write): imported code and
the libraries' state.  Random state is made anew in each session (Python's
``random`` reseeds itself at fork; numpy's global generator is reseeded
here).  Python's str hash key and the address-space layout are the
template's: fixed when an interpreter starts, they cannot change under the
objects already made with them.  Neither guards a secret here.
"""

from __future__ import annotations

import array
import gc
import json
import os
import random
import signal
import socket
import sys
import threading
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import broker  # noqa: E402
import interpreter  # noqa: E402
import isolation  # noqa: E402
import protocol  # noqa: E402

SANDBOX_ID = 1000  # the uid and gid inside, as in a cold sandbox (bwrap --uid/--gid)
TMPFS_FLAGS = isolation.MS_NOSUID | isolation.MS_NODEV
MAX_REQUEST = 64 * 1024


def receive(control: socket.socket) -> tuple[bytes, list[int]]:
    """One request and the fds that came with it; b"" when the host hung up."""
    fds = array.array("i")
    data, ancillary, _, _ = control.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def parse(data: bytes):
    try:
        return json.loads(data)
    except ValueError:
        return None


def close_all_but(keep: set[int]) -> None:
    """Closes every fd above 2 not in ``keep``: nothing of the template's reaches a session."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def to_devnull(fds=(0, 1, 2)) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in fds:
        os.dup2(null, fd)
    if null not in fds:
        os.close(null)


def monitor(request: dict, session_fd: int, status_fd: int, program: bytes) -> None:
    """The forked monitor: new namespaces, the session's first process, then its exit status."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        to_devnull()
        close_all_but({session_fd, status_fd})
        outer = os.geteuid(), os.getegid()
        isolation.unshare(isolation.SESSION_NAMESPACES)
        # /proc/self of a process that is not dumpable is root's: dumpable just to write the maps.
        isolation.set_dumpable(True)
        isolation.map_own_ids(SANDBOX_ID, SANDBOX_ID, *outer)
        isolation.set_dumpable(False)
        pid = os.fork()
        if pid == 0:
            os.close(status_fd)
            session(request, session_fd, program)  # never returns
        os.close(session_fd)
        _, status = os.waitpid(pid, 0)
        os.write(status_fd, broker.describe_exit(status).encode())
        code = 0
    except BaseException as exc:  # noqa: BLE001 - told to the host, which gives up on this session
        tell_failure(session_fd, f"the sandbox template could not start a session: {exc}")
    finally:
        os._exit(code)


def tell_failure(fd: int, message: str, framed: bool = False) -> None:
    """Before the hello, a line after ``E``; once the host speaks the protocol, a ``died`` frame."""
    try:
        if framed:
            os.write(fd, protocol.encode_message({"op": "died", "message": message[:500], "violation": False}))
        else:
            os.write(fd, b"E" + message[:500].encode("utf-8", "replace"))
    except OSError:
        pass


def session(request: dict, fd: int, program: bytes) -> None:
    """pid 1 of the session: its own mounts, then the host's go, then locked down, the broker."""
    framed = False
    try:
        isolation.mount(None, "/", None, isolation.MS_REC | isolation.MS_PRIVATE)
        isolation.mount("proc", "/proc", "proc", isolation.MS_NOSUID | isolation.MS_NODEV | isolation.MS_NOEXEC)
        # No user namespace below this one (bubblewrap's --disable-userns), whatever the
        # seccomp filter (which refuses them too) allows; written while /proc/sys is writable.
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
        isolation.mount("/proc/sys", "/proc/sys", None, isolation.MS_BIND | isolation.MS_REC)
        isolation.mount(None, "/proc/sys", None, isolation.MS_BIND | isolation.MS_REMOUNT | isolation.MS_RDONLY
                        | isolation.MS_NOSUID | isolation.MS_NODEV | isolation.MS_NOEXEC)
        for path, size in request["tmpfs"]:
            isolation.mount("tmpfs", path, "tmpfs", TMPFS_FLAGS, f"size={int(size)},mode=0755")
        os.chdir("/work")
        isolation.loopback_up()
        # The host reads this process's pid from the hello (the kernel's, not ours), moves
        # it into the session's cgroup, and only then lets it go on: every process of the
        # session is started after that, inside the cgroup.
        os.write(fd, b"H")
        if os.read(fd, 1) != b"G":
            os._exit(1)
        framed = True
        broker.apply_rlimits(request.get("rlimits", {}))
        isolation.drop_capabilities()
        if program:
            isolation.load_seccomp(program)
        os.dup2(fd, 0)
        os.dup2(fd, 1)
        if fd > 1:
            os.close(fd)
            fd = 1
        sys.argv = [os.path.join(HERE, "broker.py")]
        broker.main(start=start_interpreter)
    except BaseException as exc:  # noqa: BLE001
        tell_failure(fd, f"the sandbox session could not start: {type(exc).__name__}: {exc}", framed)
    os._exit(1)


def start_interpreter(channel_fd: int) -> int:
    """Forks the interpreter (broker.Broker's way to start it here): its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        isolation.set_dumpable(True)  # a fresh process, as if started anew
        to_devnull()
        close_all_but({channel_fd})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sys.argv = [os.path.join(HERE, "interpreter.py"), str(channel_fd)]
        reseed()
        interpreter.main()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def reseed() -> None:
    """Random state of this session's own (fork copied the template's)."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def reap(*_args) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    filter_fd = int(sys.argv[2])
    program = b""
    if filter_fd >= 0:
        with os.fdopen(filter_fd, "rb") as f:
            program = f.read()
    os.set_inheritable(control.fileno(), False)
    isolation.set_dumpable(False)
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    broker.seed_matplotlib_cache()
    errors, guard, _ = interpreter.preload()
    # Work every session would repeat, done once here: numpy's first reseed loads what it
    # needs (milliseconds), the input cache and the provenance hooks go into PIL, numpy
    # and cv2 (once per process), and the guard's compiler runs once.
    reseed()
    interpreter.install_hooks()
    if guard is not None:
        guard.compile_guarded("print(1)", "<warm-up>")
    # What is imported now stays: the collector no longer visits it, so a session's
    # collections do not write to (and so copy) every page the template shares with it.
    gc.collect()
    gc.freeze()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1 or threading.active_count() != 1:
        # fork() copies one thread: a library that started others would be broken in every session.
        control.send(json.dumps({"op": "error", "message": f"the template runs {threads} threads"}).encode())
        return
    signal.signal(signal.SIGCHLD, reap)
    control.send(json.dumps({"op": "ready", "preload_errors": errors}).encode())
    while True:
        data, fds = receive(control)
        if not data:
            return  # the host is gone: every session goes with this process (pid 1)
        request = parse(data)
        if len(fds) != 2 or not isinstance(request, dict):
            for fd in fds:
                os.close(fd)
            continue
        try:
            pid = os.fork()
        except OSError as exc:  # e.g. out of processes: this session fails, the template stays
            tell_failure(fds[0], f"the sandbox template could not fork a session: {exc}")
            pid = -1
        if pid == 0:
            control.detach()
            monitor(request, fds[0], fds[1], program)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    main()
