"""Model code against the real broker and the host channel, judged by host effects, on both sandboxes.

Model code (guard off, as an attacker who got past it) tries to reach the
host channel: frames written to every fd, through /proc/<pid>/fd and
/proc/<pid>/mem, ptrace and process_vm_writev, signals to the broker,
forged frames on and floods of the broker's socket, output floods.
Nothing forged may reach the host, the host's memory growth and wall time
stay bounded, and the broker survives or the session restarts with one note.

As in test_attacks_channel.py, each attack is a ``play_*`` function
returning JSON facts and a ``check_*`` function judging them; the host
process is root here, and test_attacks_unprivileged.py plays ``ATTACKS`` in
a host process of an unprivileged user.
"""

from __future__ import annotations

import textwrap
import time

import pytest

from host_effects import HostEffects, check_effects, check_honest, execution, honest, one_note, serving

ATTACKER_SESSION = {"guard": False, "timeout": 20}  # open_session's options


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


def play_runs_beside_a_printing_thread(session) -> dict:
    """Many runs start and end while a thread prints: each one swaps the run's
    streams in, which must not free a stream the thread is printing to."""
    session.run("import threading\nthreading.Thread(target=lambda: [print('y') for _ in iter(int, 1)], daemon=True).start()")
    results = [execution(session.run("pass")) for _ in range(40)]
    return {"outcomes": sorted({r["outcome"] for r in results}),
            "failed": [r["output"][-300:] for r in results if r["outcome"] != "OUTCOME_OK"][:1]}


def check_runs_beside_a_printing_thread(facts: dict) -> None:
    assert facts["outcomes"] == ["OUTCOME_OK"], facts["failed"]


def test_runs_beside_a_printing_thread_do_not_crash_the_interpreter(attacker):
    check_runs_beside_a_printing_thread(play_runs_beside_a_printing_thread(attacker))


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


# id -> (session options, play, check, args): what test_attacks_unprivileged.py plays.
ATTACKS = {
    "model code: fds and /proc": (ATTACKER_SESSION, play_fd_and_proc, check_fd_and_proc, ()),
    "model code: ptrace": (ATTACKER_SESSION, play_ptrace, check_ptrace, ()),
    "model code: signals to the broker": (ATTACKER_SESSION, play_signals, check_signals, ()),
    **{f"broker socket: {f}": (ATTACKER_SESSION, play_broker_forgery, check_broker_forgery, (f,)) for f in BROKER_FORGERIES},
    "broker socket: a flooding child": (ATTACKER_SESSION, play_flooding_child, check_flooding_child, ()),
    "broker socket: closed": (ATTACKER_SESSION, play_closed_socket, check_closed_socket, ()),
    "a printing thread": (ATTACKER_SESSION, play_printing_thread, check_printing_thread, ()),
    "runs beside a printing thread": (ATTACKER_SESSION, play_runs_beside_a_printing_thread, check_runs_beside_a_printing_thread, ()),
    "huge output": (ATTACKER_SESSION, play_huge_output, check_huge_output, ()),
}
