"""The broker: the only process in the sandbox that can talk to the host.

The sandbox starts this file as its first process (pid 1 of its pid
namespace: bubblewrap ``--as-pid-1``, Docker without ``--init``).  It holds
the host channel (stdin/stdout, see ``protocol.py``) and runs the model's
persistent interpreter (``interpreter.py``) as its child, speaking to it over
a socketpair.  Model code runs in the interpreter and can do anything that
process can; it cannot reach the host channel, because:

* the interpreter never has the channel's fds: it is started with
  ``close_fds`` and its fds 0-2 on /dev/null, and every other fd in the
  sandbox is opened close-on-exec;
* no other process in the sandbox holds them: the broker is pid 1, so there
  is no init (bubblewrap's or docker-init) whose fd 1 model code could open
  through ``/proc/1/fd/1``, as it could when one ran the sandbox;
* the broker is not dumpable (``PR_SET_DUMPABLE`` 0), so a process of the
  same uid can neither open its ``/proc/<pid>/fd``/``mem`` nor ptrace it
  (with no ``CAP_SYS_PTRACE``, which both sandboxes drop);
* as pid 1 it receives from inside its namespace only the signals it
  handles, so model code can neither SIGSTOP nor SIGKILL it.

What the interpreter sends is hostile input: the broker reads it with the
protocol's checks (the op expected now, header size and shape, field types,
image count and bytes), caps the run's output itself, accepts nothing
outside a request, and forwards a re-serialized copy of what passed.  A
violation, or the interpreter dying, ends the sandbox: the broker kills
everything else in it, tells the host ``died`` with the reason, and exits;
the host starts a fresh sandbox.  The host checks everything again, so a
broken broker cannot harm it either.

Timeouts are the host's: it kills the whole sandbox.  Nothing here keeps
secrets or needs clean-up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import isolation  # noqa: E402
import protocol  # noqa: E402

# The replies that end each request.
TERMINAL = {"run": {"result"}, "init": {"initialized", "error"}, "add_files": {"initialized", "error"},
            "libraries": {"libraries"}}


class Broker:
    def __init__(self, start=None) -> None:
        """``start(fd)``: starts the interpreter with its end of the socket, returning its
        pid (template.py forks it); by default it is a new Python process."""
        self.host_rx = os.fdopen(0, "rb")
        self.host_tx = os.fdopen(1, "wb")
        self.host_lock = threading.Lock()
        self.state = threading.Lock()  # guards expect, the output count and reason
        self.expect: frozenset = frozenset({"ready"})
        self.output_sent = 0
        self.output_dropped = 0
        self.reason = ""
        self.violation = False
        ours, theirs = socket.socketpair()
        if start is None:
            self.child = subprocess.Popen(
                [sys.executable, "-E", "-s", "-u", os.path.join(HERE, "interpreter.py"), str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), close_fds=True,
            )
        else:
            self.child = ForkedChild(start(theirs.fileno()))
        theirs.close()
        self.child_rx = ours.makefile("rb")
        self.child_tx = ours.makefile("wb")

    # -- to the host --------------------------------------------------------------

    def tell_host(self, header: dict, blobs=()) -> None:
        with self.host_lock:
            try:
                protocol.write_message(self.host_tx, header, blobs)
            except OSError:
                os._exit(0)  # the host is gone

    # -- from the interpreter -------------------------------------------------------

    def read_interpreter(self) -> None:
        try:
            while True:
                header, blobs = protocol.read_reply(self.child_rx, lambda: self.expect)
                self.forward(header, blobs)
        except protocol.InvalidMessage as exc:
            self.end_interpreter(f"the interpreter sent an invalid message ({exc})", violation=True)
        except (protocol.ChannelClosed, OSError, ValueError):
            # Usually the interpreter exited: give serve() the moment it needs to
            # reap it and report its status; one that closed its end and lives on
            # is killed.
            time.sleep(0.5)
            self.end_interpreter("the interpreter closed its channel")

    def forward(self, header: dict, blobs: list[bytes]) -> None:
        op = header["op"]
        with self.state:
            if op == "output":
                text = header["data"]
                room = max(0, protocol.OUTPUT_LIMIT - self.output_sent)
                self.output_dropped += max(0, len(text) - room)
                text = text[:room]
                self.output_sent += len(text)
                if not text:
                    return
                header = {"op": "output", "data": text, **({"stream": header["stream"]} if "stream" in header else {})}
            else:
                self.expect = frozenset()  # one reply per request; anything after it is a violation
                if op == "result":
                    header["dropped"] = min(2**53, header["dropped"] + self.output_dropped)
        self.tell_host(header, blobs)

    def end_interpreter(self, reason: str, violation: bool = False) -> None:
        with self.state:
            if not self.reason:
                self.reason, self.violation = reason, violation
        try:
            # Not Popen.kill: its poll() could reap the child behind serve()'s back.
            os.kill(self.child.pid, signal.SIGKILL)
        except OSError:
            pass

    # -- from the host ----------------------------------------------------------------

    def read_host(self) -> None:
        while True:
            try:
                header, blobs = protocol.read_message(self.host_rx)
            except protocol.ProtocolError:
                os._exit(0)  # the host hung up: nothing to finish
            op = header.get("op")
            if op == "close":
                os._exit(0)
            if op not in TERMINAL:
                self.tell_host({"op": "error", "message": f"unknown op {str(op)[:40]!r}"})
                continue
            request = {"op": op}
            if op in ("init", "add_files"):
                try:
                    request["files"] = write_inputs(header.get("files", []), blobs)
                except (OSError, ValueError, TypeError) as exc:
                    self.tell_host({"op": "error", "message": f"{type(exc).__name__}: {exc}"[: protocol.MAX_NOTE]})
                    continue
                if op == "init":
                    request["guard"] = bool(header.get("guard", True))
                    pixels = header.get("max_pixels")
                    if isinstance(pixels, int) and not isinstance(pixels, bool) and pixels > 0:
                        request["max_pixels"] = pixels
            elif op == "run":
                request["code"] = header.get("code", "")
            elif op == "libraries":
                request["names"] = header.get("names", [])
            with self.state:
                self.expect = frozenset(TERMINAL[op] | ({"output"} if op == "run" else set()))
                self.output_sent = self.output_dropped = 0
            try:
                protocol.write_message(self.child_tx, request)
            except OSError:
                self.end_interpreter("the interpreter stopped reading")

    # -- lifetime ------------------------------------------------------------------------

    def serve(self) -> None:
        threading.Thread(target=self.read_interpreter, daemon=True).start()
        threading.Thread(target=self.read_host, daemon=True).start()
        # pid 1 reaps every orphan; the interpreter's end is the sandbox's end.
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == self.child.pid:
                self.child.returncode = status
                break
        with self.state:
            reason, violation = self.reason or describe_exit(status), self.violation
        kill_everything_else()
        self.tell_host({"op": "died", "message": reason[: protocol.MAX_NOTE], "violation": violation})
        os._exit(0)


class ForkedChild:
    """What the broker needs of its interpreter when it was forked, not started (Popen's names)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = None


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def kill_everything_else() -> None:
    """As pid 1, kill(-1) reaches every other process of the sandbox and none outside."""
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass


def write_inputs(names, blobs) -> list[str]:
    if not isinstance(names, list) or len(names) != len(blobs):
        raise ValueError("the file list does not match the files sent")
    for name, data in zip(names, blobs):
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise ValueError(f"bad input file name {name!r}")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return names


def apply_rlimits(spec: dict | None = None) -> None:
    """Limits from the host (given, or in the environment), set hard so that nothing inside can raise them."""
    import resource

    if spec is None:
        spec = json.loads(os.environ.pop("AGENTIC_VISION_RLIMITS", "{}") or "{}")
    for name, value in spec.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def seed_matplotlib_cache() -> None:
    """Copies a prebuilt font list in, so the first pyplot import is fast."""
    seed = os.environ.pop("AGENTIC_VISION_MPL_SEED", "")
    target = os.environ.get("MPLCONFIGDIR", "")
    if not seed or not target or not os.path.isdir(seed):
        return
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(seed):
        if name.endswith(".json"):
            with open(os.path.join(seed, name), "rb") as src, open(os.path.join(target, name), "wb") as dst:
                dst.write(src.read())


def main(start=None) -> None:
    """``start``: how a session forked by template.py starts its interpreter (the
    template set the limits already); by default a new Python process."""
    isolation.set_dumpable(False)
    if os.getpid() != 1:
        # Whatever is pid 1 instead (an init) holds the host channel within
        # reach of model code: refuse rather than run a weaker sandbox.
        sys.stderr.write("the sandbox broker must be pid 1 of its pid namespace (bwrap --as-pid-1, docker run without --init)\n")
        sys.exit(2)
    # Python's one default handler: as pid 1 any other signal from inside is dropped.
    signal.signal(signal.SIGINT, lambda *_: None)
    # A write past RLIMIT_FSIZE should be an OSError, not a kill.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if start is None:
        apply_rlimits()
        seed_matplotlib_cache()
    Broker(start).serve()


if __name__ == "__main__":
    main()
