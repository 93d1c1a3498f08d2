"""Attacks on the channel between the sandbox and the host, judged by host effects.

Two kinds, both on both sandboxes:

* model code (guard off, as an attacker who got past it) that tries to reach
  the host channel: frames written to every fd, through /proc/<pid>/fd and
  /proc/<pid>/mem, ptrace and process_vm_writev, signals to the broker,
  floods of the broker's socket;
* a hostile runtime (tests/hostile_runtime.py) started in the real sandbox in
  place of the broker, which sends the host forged and malformed frames, so
  the host's own checks are tested without the broker's.

Each attack must end with one clear note and an OUTCOME_FAILED (or
deadline) run, with the host's memory growth and wall time bounded and the
same session working afterwards.
"""

from __future__ import annotations

import os
import time
import textwrap
from pathlib import Path

import pytest

from agentic_vision import open_session
from agentic_vision.images import to_model_image

HOSTILE = (Path(__file__).parent / "hostile_runtime.py").read_text()
TIMEOUT = 5.0
MEMORY_BOUND = 300 * 2**20
INVALID = "The sandbox sent an invalid message"


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class HostEffects:
    """Peak host memory above the start, and wall time, of what runs inside."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self.rss = status("VmRSS")
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.started
        self.growth = status("VmHWM") - self.rss

    def check(self, seconds: float = TIMEOUT + 5) -> None:
        assert self.growth < MEMORY_BOUND, f"host memory grew by {self.growth // 2**20} MiB"
        assert self.seconds < seconds, f"took {self.seconds:.1f} s"


@pytest.fixture
def hostile(sandbox_kind):
    session = open_session(sandbox_kind, timeout=TIMEOUT, entry=("-c", HOSTILE))
    yield session
    session.close()


def still_honest(session) -> None:
    result = session.run("print(1)")
    assert result.outcome == "OUTCOME_OK", result.output
    assert result.output.endswith("1\n")


def serving(session):
    """What serves the session now: its Docker container, or its local process."""
    return session.container or session.worker_pid


def wait_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.01)
    return predicate()


def one_note(output: str, text: str = INVALID) -> None:
    lines = [line for line in output.splitlines() if text in line]
    assert len(lines) == 1, output[-2000:]


# -- a hostile runtime: the host's own checks -----------------------------------------------

REFUSED = [
    "sixty images",
    "huge blobs",
    "notes is a number",
    "images are numbers",
    "forty 8000x8000 pngs",
    "empty objects",
    "64 MiB of empty objects",
    "deep nesting",
    "wrong reply",
    "unknown op",
    "header is a list",
    "header is not utf-8",
    "4 GiB header length",
    "output is a number",
    "negative dropped",
    "extra field",
    "outcome forged",
    "dropped is NaN",
    "dropped is true",
    "blob longer than announced",
    "note too long",
]


@pytest.mark.parametrize("attack", REFUSED)
def test_a_forged_or_malformed_reply_is_refused_before_it_is_kept(hostile, attack):
    before = serving(hostile)
    with HostEffects() as effects:
        result = hostile.run(attack)
    assert result.outcome == "OUTCOME_FAILED"
    assert result.images == []
    one_note(result.output)
    assert "Traceback" not in result.output
    effects.check()
    still_honest(hostile)
    assert serving(hostile) not in (None, before)  # a fresh sandbox for the next run


@pytest.mark.parametrize("attack", ["16 MiB output frames between runs", "small output frames between runs", "two results"])
def test_frames_outside_a_run_kill_the_sandbox_and_the_next_run_says_so(hostile, attack):
    with HostEffects() as effects:
        first = hostile.run(attack)
        worker = hostile._worker
        # The flood runs while no run is active; it is seen (and the sandbox
        # killed) as soon as its first frame arrives.
        assert wait_until(lambda: not worker.alive, timeout=20)
        after = hostile.run("print(1)")
    assert first.outcome == "OUTCOME_OK"
    assert after.outcome == "OUTCOME_OK" and after.output.endswith("1\n")
    one_note(after.output, "Before this run the sandbox sent an invalid message")
    effects.check(seconds=30)
    still_honest(hostile)


def test_output_flooded_within_a_run_is_capped_as_it_arrives(hostile):
    before = serving(hostile)
    with HostEffects() as effects:
        result = hostile.run("output flood in a run")  # 400 frames of 64 Ki characters
    assert result.outcome == "OUTCOME_OK"
    assert result.output.count("z") == 64 * 1024
    assert "more characters were not kept" in result.output
    effects.check()
    assert serving(hostile) == before


def test_ten_huge_images_cost_the_host_a_bounded_decode(hostile):
    with HostEffects() as effects:
        result = hostile.run("ten 8000x8000 pngs")
        shown = [to_model_image(image, 1536) for image in result.images]
    assert result.outcome == "OUTCOME_OK"
    assert len(shown) == 2  # 2 x 64 megapixels is the budget of one run
    assert result.output.count("megapixels in all") == 8
    effects.check()


def test_a_sandbox_that_stops_reading_cannot_hang_add_inputs(hostile):
    hostile.run("stop reading")
    before = serving(hostile)
    with HostEffects() as effects:
        added = hostile.add_inputs([("big.bin", os.urandom(4 * 2**20))])
    assert [f.name for f in added] == ["big.bin"]
    effects.check()
    after = hostile.run("print(1)")
    one_note(after.output, "While files were added the sandbox did not take them in time")
    assert serving(hostile) not in (None, before)  # at once: the fresh sandbox has the new file too


def test_a_sandbox_that_stops_reading_cannot_hang_a_run_with_long_code(hostile):
    hostile.run("stop reading")
    with HostEffects() as effects:
        result = hostile.run("#" * (8 * 2**20))
    assert result.outcome == "OUTCOME_DEADLINE_EXCEEDED"
    one_note(result.output, "exceeded the time limit")
    effects.check()
    still_honest(hostile)


def test_half_a_frame_ends_at_the_timeout(hostile):
    with HostEffects() as effects:
        result = hostile.run("half a frame")
    assert result.outcome == "OUTCOME_DEADLINE_EXCEEDED"
    effects.check()
    still_honest(hostile)


def test_a_forged_death_only_restarts_the_sandbox(hostile):
    result = hostile.run("forged died")
    assert result.outcome == "OUTCOME_FAILED"
    one_note(result.output, "The sandbox process died (nothing to see)")
    still_honest(hostile)


def test_an_image_whose_bytes_lie_about_its_type_is_dropped(hostile):
    before = serving(hostile)
    result = hostile.run("mime type lies")
    assert result.outcome == "OUTCOME_OK" and result.images == []
    one_note(result.output, "an image was dropped")
    assert serving(hostile) == before


# -- model code against the real broker -----------------------------------------------------

FORGE = """
import io, json, os, struct
def frame(header, blobs=()):
    header = dict(header, blobs=[len(b) for b in blobs])
    data = json.dumps(header).encode()
    return struct.pack('>I', len(data)) + data + b''.join(struct.pack('>I', len(b)) + b for b in blobs)
from PIL import Image
buf = io.BytesIO(); Image.new('RGB', (4, 4), 'red').save(buf, 'PNG')
FORGED = frame({'op': 'result', 'outcome': 'OUTCOME_OK', 'dropped': 0, 'notes': ['FORGED-NOTE'],
                'images': [{'mime_type': 'image/png'}] * 60}, [buf.getvalue()] * 60)
"""


@pytest.fixture
def attacker(open_sandbox):
    return open_sandbox(guard=False, timeout=20)


def run(session, code: str):
    return session.run(textwrap.dedent(code))


def forged_nothing(result) -> None:
    assert result.images == []
    assert "[FORGED-NOTE]" not in result.output


def test_model_code_cannot_write_frames_to_the_host_through_any_fd_or_proc(attacker):
    with HostEffects() as effects:
        result = attacker.run(FORGE + textwrap.dedent("""
            import os, socket
            channel = set()
            for fd in map(int, os.listdir('/proc/self/fd')):
                try:
                    if socket.socket(fileno=os.dup(fd)).getsockname() is not None:
                        channel.add(fd)  # the broker's socket: tested on its own below
                except OSError:
                    pass
            reached = []
            for fd in range(0, 1024):
                if fd in channel:
                    continue
                try:
                    os.write(fd, FORGED)
                    reached.append(f'fd {fd}')
                except OSError:
                    pass
            for path in ['/proc/1/fd/0', '/proc/1/fd/1', '/proc/1/fd/2'] + [
                    f'/proc/{pid}/fd/{n}' for pid in os.listdir('/proc') if pid.isdigit() and pid != str(os.getpid())
                    for n in range(8)]:
                try:
                    fd = os.open(path, os.O_WRONLY)
                    os.write(fd, FORGED)
                    reached.append(path)
                except OSError:
                    pass
            print('opened', [r for r in reached if r.startswith('/proc')])
        """))
    forged_nothing(result)
    assert result.outcome == "OUTCOME_OK", result.output
    assert "opened []" in result.output
    effects.check(seconds=30)
    still_honest(attacker)


def test_model_code_cannot_ptrace_or_write_the_broker(attacker):
    result = run(attacker, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
        print('attach', libc.ptrace(PTRACE_ATTACH, 1, 0, 0), libc.ptrace(PTRACE_SEIZE, 1, 0, 0))
        for mode in ('rb', 'r+b'):
            try:
                open('/proc/1/mem', mode); print('mem', mode, 'open')
            except OSError as exc:
                print('mem', mode, type(exc).__name__)
        class iovec(ctypes.Structure):
            _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
        data = ctypes.create_string_buffer(b'x' * 16)
        local, remote = iovec(ctypes.addressof(data), 16), iovec(0x400000, 16)
        libc.process_vm_writev.restype = ctypes.c_ssize_t
        print('vm_writev', libc.process_vm_writev(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
        for name in ('environ', 'maps', 'fd'):
            try:
                os.listdir('/proc/1/fd') if name == 'fd' else open(f'/proc/1/{name}', 'rb').read()
                print(name, 'readable' if name != 'fd' else 'listable')
            except OSError as exc:
                print(name, type(exc).__name__)
    """)
    assert result.outcome == "OUTCOME_OK", result.output
    assert "attach -1 -1" in result.output
    assert "mem rb open" not in result.output and "mem r+b open" not in result.output
    assert "vm_writev -1" in result.output
    assert "environ readable" not in result.output and "maps readable" not in result.output
    still_honest(attacker)


def test_model_code_cannot_stop_or_kill_the_broker(attacker):
    before = serving(attacker)
    result = run(attacker, """
        import os, signal
        for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGHUP):
            os.kill(1, sig)
        print('sent')
    """)
    assert result.outcome == "OUTCOME_OK" and "sent" in result.output
    started = time.monotonic()
    still_honest(attacker)
    assert time.monotonic() - started < 5  # the broker was not stopped
    assert serving(attacker) == before


def broker_socket_code(body: str) -> str:
    return FORGE + """
import os, socket
def broker_socket():
    for fd in map(int, os.listdir('/proc/self/fd')):
        try:
            socket.socket(fileno=os.dup(fd)).getsockname()
            return fd
        except OSError:
            pass
""" + textwrap.dedent(body)


BROKER_FORGERIES = {
    "sixty images": "FORGED",
    "a 16 MiB output frame": "frame({'op': 'output', 'data': 'x' * (16 << 20)})",
    "empty objects": "frame({'op': 'output', 'data': 'x', 'junk': [{}] * 200000})",
    "250 MiB blobs": "struct.pack('>I', 200) + json.dumps({'op': 'result', 'blobs': [250 << 20] * 8}).encode().ljust(200)",
    "notes is a number": "frame({'op': 'result', 'outcome': 'OUTCOME_OK', 'dropped': 0, 'notes': 5, 'images': []})",
    "a forged death": "frame({'op': 'died', 'message': 'x', 'violation': False})",
}


@pytest.mark.parametrize("forgery", BROKER_FORGERIES)
def test_a_forged_frame_on_the_broker_socket_is_refused_by_the_broker(attacker, forgery):
    code = f"data = {BROKER_FORGERIES[forgery]}\nos.write(broker_socket(), data)\nimport time; time.sleep(5)"
    with HostEffects() as effects:
        result = attacker.run(broker_socket_code(code))
    assert result.outcome == "OUTCOME_FAILED"
    forged_nothing(result)
    one_note(result.output)
    assert "the interpreter sent an invalid message" in result.output
    effects.check(seconds=15)
    still_honest(attacker)


def test_a_child_flooding_the_broker_socket_between_runs_ends_the_sandbox(attacker):
    with HostEffects() as effects:
        first = attacker.run(broker_socket_code("""
            fd = broker_socket()
            if os.fork() == 0:
                import time
                time.sleep(0.5)  # after the result
                flood = frame({'op': 'output', 'data': 'x' * 60000})
                while True:
                    os.write(fd, flood)
            print('forked')
        """))
        time.sleep(2)
        after = attacker.run("print(1)")
    assert first.outcome == "OUTCOME_OK"
    one_note(after.output, "Before this run the sandbox sent an invalid message")
    assert after.output.endswith("1\n")
    effects.check(seconds=30)


def test_closing_the_broker_socket_is_a_restart(attacker):
    code = """
        for fd in map(int, os.listdir('/proc/self/fd')):
            try:
                socket.socket(fileno=os.dup(fd)).getsockname()
                os.close(fd)
            except OSError:
                pass
        import time; time.sleep(1)
    """
    result = attacker.run(broker_socket_code(code))
    assert result.outcome == "OUTCOME_FAILED"
    one_note(result.output, "The sandbox process died")
    still_honest(attacker)


def test_a_thread_printing_between_runs_costs_the_host_nothing(attacker):
    before = serving(attacker)
    with HostEffects() as effects:
        attacker.run("""
import threading
def spam():
    while True:
        print('x' * 1_000_000)
threading.Thread(target=spam, daemon=True).start()
""")
        time.sleep(2)
        result = attacker.run("print('done')")
    assert result.outcome == "OUTCOME_OK", result.output[-2000:]
    assert len(result.output) < 70 * 1024  # the cap, whatever the thread wrote meanwhile
    effects.check(seconds=30)
    assert serving(attacker) == before


def test_huge_output_is_capped_in_the_sandbox_and_on_the_host(attacker):
    with HostEffects() as effects:
        result = attacker.run("import sys, os\nfor _ in range(200):\n    sys.stdout.write('w' * 1_000_000)\nos.write(1, b'v' * 50_000_000)")
    assert result.outcome == "OUTCOME_OK"
    assert len(result.output) < 70 * 1024
    assert "more characters were not kept" in result.output
    effects.check(seconds=30)
