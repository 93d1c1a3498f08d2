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

Each attack is a ``play_*`` function, which attacks a session and returns
what the host saw as JSON facts (it runs where the session is), and a
``check_*`` function, which judges those facts.  The host process is root
here; test_attacks_unprivileged.py plays the same attacks (``ATTACKS``) in a
host process of an unprivileged user and judges them with the same checks.
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
# How each kind of attack opens its session (``open_session`` options).
HOSTILE_SESSION = {"timeout": TIMEOUT, "entry": ("-c", HOSTILE)}
ATTACKER_SESSION = {"guard": False, "timeout": 20}


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

    @property
    def facts(self) -> dict:
        return {"growth": self.growth, "seconds": self.seconds}


def check_effects(effects: dict, seconds: float = TIMEOUT + 5) -> None:
    assert effects["growth"] < MEMORY_BOUND, f"host memory grew by {effects['growth'] // 2**20} MiB"
    assert effects["seconds"] < seconds, f"took {effects['seconds']:.1f} s"


@pytest.fixture
def hostile(sandbox_kind):
    session = open_session(sandbox_kind, **HOSTILE_SESSION)
    yield session
    session.close()


def execution(result) -> dict:
    """What the host kept of a run, as facts."""
    return {"outcome": result.outcome.value, "output": result.output, "images": len(result.images)}


def honest(session) -> dict:
    """A plain run after the attack: its facts, and how long it took."""
    started = time.monotonic()
    return dict(execution(session.run("print(1)")), seconds=time.monotonic() - started)


def check_honest(after: dict) -> None:
    assert after["outcome"] == "OUTCOME_OK", after["output"]
    assert after["output"].endswith("1\n")


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
BETWEEN_RUNS = ["16 MiB output frames between runs", "small output frames between runs", "two results"]


def play_refused(session, attack: str) -> dict:
    before = serving(session)
    with HostEffects() as effects:
        result = session.run(attack)
    after = honest(session)
    return {"result": execution(result), "effects": effects.facts, "after": after,
            "fresh": serving(session) not in (None, before)}


def check_refused(facts: dict) -> None:
    result = facts["result"]
    assert result["outcome"] == "OUTCOME_FAILED"
    assert result["images"] == 0
    one_note(result["output"])
    assert "Traceback" not in result["output"]
    check_effects(facts["effects"])
    check_honest(facts["after"])
    assert facts["fresh"]  # a fresh sandbox for the next run


@pytest.mark.parametrize("attack", REFUSED)
def test_a_forged_or_malformed_reply_is_refused_before_it_is_kept(hostile, attack):
    check_refused(play_refused(hostile, attack))


def play_between_runs(session, attack: str) -> dict:
    with HostEffects() as effects:
        first = session.run(attack)
        worker = session._worker
        # The flood runs while no run is active; it is seen (and the sandbox
        # killed) as soon as its first frame arrives.
        ended = wait_until(lambda: not worker.alive, timeout=20)
        after = session.run("print(1)")
    return {"first": execution(first), "ended": ended, "after": execution(after), "effects": effects.facts,
            "then": honest(session)}


def check_between_runs(facts: dict) -> None:
    assert facts["first"]["outcome"] == "OUTCOME_OK"
    assert facts["ended"]
    check_honest(facts["after"])
    one_note(facts["after"]["output"], "Before this run the sandbox sent an invalid message")
    check_effects(facts["effects"], seconds=30)
    check_honest(facts["then"])


@pytest.mark.parametrize("attack", BETWEEN_RUNS)
def test_frames_outside_a_run_kill_the_sandbox_and_the_next_run_says_so(hostile, attack):
    check_between_runs(play_between_runs(hostile, attack))


def play_output_flood(session) -> dict:
    before = serving(session)
    with HostEffects() as effects:
        result = session.run("output flood in a run")  # 400 frames of 64 Ki characters
    return {"result": execution(result), "effects": effects.facts, "same": serving(session) == before}


def check_output_flood(facts: dict) -> None:
    result = facts["result"]
    assert result["outcome"] == "OUTCOME_OK"
    assert result["output"].count("z") == 64 * 1024
    assert "more characters were not kept" in result["output"]
    check_effects(facts["effects"])
    assert facts["same"]


def test_output_flooded_within_a_run_is_capped_as_it_arrives(hostile):
    check_output_flood(play_output_flood(hostile))


def play_huge_images(session) -> dict:
    with HostEffects() as effects:
        result = session.run("ten 8000x8000 pngs")
        shown = [to_model_image(image, 1536) for image in result.images]
    return {"result": execution(result), "shown": len(shown), "effects": effects.facts}


def check_huge_images(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_OK"
    assert facts["shown"] == 2  # 2 x 64 megapixels is the budget of one run
    assert facts["result"]["output"].count("megapixels in all") == 8
    check_effects(facts["effects"])


def test_ten_huge_images_cost_the_host_a_bounded_decode(hostile):
    check_huge_images(play_huge_images(hostile))


def play_stuck_add_inputs(session) -> dict:
    session.run("stop reading")
    before = serving(session)
    with HostEffects() as effects:
        added = session.add_inputs([("big.bin", os.urandom(4 * 2**20))])
    fresh = serving(session) not in (None, before)  # at once: the fresh sandbox has the new file too
    return {"added": [f.name for f in added], "effects": effects.facts, "after": execution(session.run("print(1)")),
            "fresh": fresh}


def check_stuck_add_inputs(facts: dict) -> None:
    assert facts["added"] == ["big.bin"]
    check_effects(facts["effects"])
    one_note(facts["after"]["output"], "While files were added the sandbox did not take them in time")
    assert facts["fresh"]


def test_a_sandbox_that_stops_reading_cannot_hang_add_inputs(hostile):
    check_stuck_add_inputs(play_stuck_add_inputs(hostile))


def play_stuck_long_code(session) -> dict:
    session.run("stop reading")
    with HostEffects() as effects:
        result = session.run("#" * (8 * 2**20))
    return {"result": execution(result), "effects": effects.facts, "after": honest(session)}


def check_stuck_long_code(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_DEADLINE_EXCEEDED"
    one_note(facts["result"]["output"], "exceeded the time limit")
    check_effects(facts["effects"])
    check_honest(facts["after"])


def test_a_sandbox_that_stops_reading_cannot_hang_a_run_with_long_code(hostile):
    check_stuck_long_code(play_stuck_long_code(hostile))


def play_half_a_frame(session) -> dict:
    with HostEffects() as effects:
        result = session.run("half a frame")
    return {"result": execution(result), "effects": effects.facts, "after": honest(session)}


def check_half_a_frame(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_DEADLINE_EXCEEDED"
    check_effects(facts["effects"])
    check_honest(facts["after"])


def test_half_a_frame_ends_at_the_timeout(hostile):
    check_half_a_frame(play_half_a_frame(hostile))


def play_forged_death(session) -> dict:
    return {"result": execution(session.run("forged died")), "after": honest(session)}


def check_forged_death(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_FAILED"
    one_note(facts["result"]["output"], "The sandbox process died (nothing to see)")
    check_honest(facts["after"])


def test_a_forged_death_only_restarts_the_sandbox(hostile):
    check_forged_death(play_forged_death(hostile))


def play_lying_image(session) -> dict:
    before = serving(session)
    result = session.run("mime type lies")
    return {"result": execution(result), "same": serving(session) == before}


def check_lying_image(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_OK" and facts["result"]["images"] == 0
    one_note(facts["result"]["output"], "an image was dropped")
    assert facts["same"]


def test_an_image_whose_bytes_lie_about_its_type_is_dropped(hostile):
    check_lying_image(play_lying_image(hostile))


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
    return open_sandbox(**ATTACKER_SESSION)


def run(session, code: str):
    return session.run(textwrap.dedent(code))


def check_forged_nothing(result: dict) -> None:
    assert result["images"] == 0
    assert "[FORGED-NOTE]" not in result["output"]


FD_AND_PROC_CODE = FORGE + textwrap.dedent("""
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
""")


def play_fd_and_proc(session) -> dict:
    with HostEffects() as effects:
        result = session.run(FD_AND_PROC_CODE)
    return {"result": execution(result), "effects": effects.facts, "after": honest(session)}


def check_fd_and_proc(facts: dict) -> None:
    result = facts["result"]
    check_forged_nothing(result)
    assert result["outcome"] == "OUTCOME_OK", result["output"]
    assert "opened []" in result["output"]
    check_effects(facts["effects"], seconds=30)
    check_honest(facts["after"])


def test_model_code_cannot_write_frames_to_the_host_through_any_fd_or_proc(attacker):
    check_fd_and_proc(play_fd_and_proc(attacker))


PTRACE_CODE = """
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
"""


def play_ptrace(session) -> dict:
    return {"result": execution(run(session, PTRACE_CODE)), "after": honest(session)}


def check_ptrace(facts: dict) -> None:
    result, output = facts["result"], facts["result"]["output"]
    assert result["outcome"] == "OUTCOME_OK", output
    assert "attach -1 -1" in output
    assert "mem rb open" not in output and "mem r+b open" not in output
    assert "vm_writev -1" in output
    assert "environ readable" not in output and "maps readable" not in output
    check_honest(facts["after"])


def test_model_code_cannot_ptrace_or_write_the_broker(attacker):
    check_ptrace(play_ptrace(attacker))


SIGNALS_CODE = """
    import os, signal
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGHUP):
        os.kill(1, sig)
    print('sent')
"""


def play_signals(session) -> dict:
    before = serving(session)
    result = run(session, SIGNALS_CODE)
    return {"result": execution(result), "after": honest(session), "same": serving(session) == before}


def check_signals(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_OK" and "sent" in facts["result"]["output"]
    check_honest(facts["after"])
    assert facts["after"]["seconds"] < 5  # the broker was not stopped
    assert facts["same"]


def test_model_code_cannot_stop_or_kill_the_broker(attacker):
    check_signals(play_signals(attacker))


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


def play_broker_forgery(session, forgery: str) -> dict:
    code = f"data = {BROKER_FORGERIES[forgery]}\nos.write(broker_socket(), data)\nimport time; time.sleep(5)"
    with HostEffects() as effects:
        result = session.run(broker_socket_code(code))
    return {"result": execution(result), "effects": effects.facts, "after": honest(session)}


def check_broker_forgery(facts: dict) -> None:
    result = facts["result"]
    assert result["outcome"] == "OUTCOME_FAILED"
    check_forged_nothing(result)
    one_note(result["output"])
    assert "the interpreter sent an invalid message" in result["output"]
    check_effects(facts["effects"], seconds=15)
    check_honest(facts["after"])


@pytest.mark.parametrize("forgery", BROKER_FORGERIES)
def test_a_forged_frame_on_the_broker_socket_is_refused_by_the_broker(attacker, forgery):
    check_broker_forgery(play_broker_forgery(attacker, forgery))


FLOODING_CHILD_CODE = """
    fd = broker_socket()
    if os.fork() == 0:
        import time
        time.sleep(0.5)  # after the result
        flood = frame({'op': 'output', 'data': 'x' * 60000})
        while True:
            os.write(fd, flood)
    print('forked')
"""


def play_flooding_child(session) -> dict:
    with HostEffects() as effects:
        first = session.run(broker_socket_code(FLOODING_CHILD_CODE))
        time.sleep(2)
        after = session.run("print(1)")
    return {"first": execution(first), "after": execution(after), "effects": effects.facts}


def check_flooding_child(facts: dict) -> None:
    assert facts["first"]["outcome"] == "OUTCOME_OK"
    one_note(facts["after"]["output"], "Before this run the sandbox sent an invalid message")
    assert facts["after"]["output"].endswith("1\n")
    check_effects(facts["effects"], seconds=30)


def test_a_child_flooding_the_broker_socket_between_runs_ends_the_sandbox(attacker):
    check_flooding_child(play_flooding_child(attacker))


CLOSE_SOCKET_CODE = """
    for fd in map(int, os.listdir('/proc/self/fd')):
        try:
            socket.socket(fileno=os.dup(fd)).getsockname()
            os.close(fd)
        except OSError:
            pass
    import time; time.sleep(1)
"""


def play_closed_socket(session) -> dict:
    return {"result": execution(session.run(broker_socket_code(CLOSE_SOCKET_CODE))), "after": honest(session)}


def check_closed_socket(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_FAILED"
    one_note(facts["result"]["output"], "The sandbox process died")
    check_honest(facts["after"])


def test_closing_the_broker_socket_is_a_restart(attacker):
    check_closed_socket(play_closed_socket(attacker))


PRINTING_THREAD_CODE = """
import threading
def spam():
    while True:
        print('x' * 1_000_000)
threading.Thread(target=spam, daemon=True).start()
"""


def play_printing_thread(session) -> dict:
    before = serving(session)
    with HostEffects() as effects:
        session.run(PRINTING_THREAD_CODE)
        time.sleep(2)
        result = session.run("print('done')")
    return {"result": execution(result), "effects": effects.facts, "same": serving(session) == before}


def check_printing_thread(facts: dict) -> None:
    assert facts["result"]["outcome"] == "OUTCOME_OK", facts["result"]["output"][-2000:]
    assert len(facts["result"]["output"]) < 70 * 1024  # the cap, whatever the thread wrote meanwhile
    check_effects(facts["effects"], seconds=30)
    assert facts["same"]


def test_a_thread_printing_between_runs_costs_the_host_nothing(attacker):
    check_printing_thread(play_printing_thread(attacker))


HUGE_OUTPUT_CODE = "import sys, os\nfor _ in range(200):\n    sys.stdout.write('w' * 1_000_000)\nos.write(1, b'v' * 50_000_000)"


def play_huge_output(session) -> dict:
    with HostEffects() as effects:
        result = session.run(HUGE_OUTPUT_CODE)
    return {"result": execution(result), "effects": effects.facts}


def check_huge_output(facts: dict) -> None:
    result = facts["result"]
    assert result["outcome"] == "OUTCOME_OK"
    assert len(result["output"]) < 70 * 1024
    assert "more characters were not kept" in result["output"]
    check_effects(facts["effects"], seconds=30)


def test_huge_output_is_capped_in_the_sandbox_and_on_the_host(attacker):
    check_huge_output(play_huge_output(attacker))


# -- every attack above, for a host of another user -------------------------------------------

# id -> (session options, play, check, args): what test_attacks_unprivileged.py plays.
ATTACKS = {
    **{f"refused: {a}": (HOSTILE_SESSION, play_refused, check_refused, (a,)) for a in REFUSED},
    **{f"between runs: {a}": (HOSTILE_SESSION, play_between_runs, check_between_runs, (a,)) for a in BETWEEN_RUNS},
    "output flood in a run": (HOSTILE_SESSION, play_output_flood, check_output_flood, ()),
    "ten huge images": (HOSTILE_SESSION, play_huge_images, check_huge_images, ()),
    "stops reading: add_inputs": (HOSTILE_SESSION, play_stuck_add_inputs, check_stuck_add_inputs, ()),
    "stops reading: long code": (HOSTILE_SESSION, play_stuck_long_code, check_stuck_long_code, ()),
    "half a frame": (HOSTILE_SESSION, play_half_a_frame, check_half_a_frame, ()),
    "forged death": (HOSTILE_SESSION, play_forged_death, check_forged_death, ()),
    "lying image": (HOSTILE_SESSION, play_lying_image, check_lying_image, ()),
    "model code: fds and /proc": (ATTACKER_SESSION, play_fd_and_proc, check_fd_and_proc, ()),
    "model code: ptrace": (ATTACKER_SESSION, play_ptrace, check_ptrace, ()),
    "model code: signals to the broker": (ATTACKER_SESSION, play_signals, check_signals, ()),
    **{f"broker socket: {f}": (ATTACKER_SESSION, play_broker_forgery, check_broker_forgery, (f,)) for f in BROKER_FORGERIES},
    "broker socket: a flooding child": (ATTACKER_SESSION, play_flooding_child, check_flooding_child, ()),
    "broker socket: closed": (ATTACKER_SESSION, play_closed_socket, check_closed_socket, ()),
    "a printing thread": (ATTACKER_SESSION, play_printing_thread, check_printing_thread, ()),
    "huge output": (ATTACKER_SESSION, play_huge_output, check_huge_output, ()),
}
