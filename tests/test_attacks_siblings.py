"""Sessions open at the same time are isolated from each other, judged by effects on the host.

A victim session holds a token (files, children, sockets, IPC objects); an
attacker session, guard off, hunts it through every path it can walk, /proc,
signals to every pid, ptrace and process_vm_readv, 127.0.0.1 and abstract
unix sockets, System V and POSIX IPC (sibling_attacks.py, sibling_probes.py).
The same probe run in the victim first must find all of it, so a probe that
finds nothing proves something.  Fresh sessions must not share random state
(a design that forks sessions from one pre-started process would copy it),
and one session's memory hog must not end a sibling's run.  Both sandboxes,
host as root; the local sandbox also from an unprivileged host user, where
every sandbox is that same host uid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import require
from session_host import Peak, children_of, rss, session_root_pid
from sibling_attacks import SESSION, check_attack, check_control, check_siblings, check_victim, play_siblings, \
    play_siblings_unprivileged
from sibling_probes import HOLDER, PATTERN, PROBE, new_secrets, with_params
from unprivileged_host import SYSTEM_PYTHON, facts_of, home, run_unprivileged, step  # noqa: F401  (home: a fixture)


@pytest.fixture
def as_root():
    require(os.geteuid() == 0, "root (the host-as-root half; test_siblings_as_an_unprivileged_host_user is the other)")


@pytest.mark.usefixtures("as_root")
def test_a_sibling_session_reaches_nothing_of_another(open_sandbox):
    held = new_secrets()
    victim, attacker = open_sandbox(**SESSION), open_sandbox(**SESSION)
    check_siblings(play_siblings(victim, attacker, held), held)


@pytest.mark.usefixtures("as_root")
def test_the_checks_fail_when_the_attacker_is_in_the_victims_sandbox(open_sandbox):
    """The same attack from inside the victim's own sandbox reaches everything, and both judges say so."""
    held = new_secrets()
    victim = open_sandbox(**SESSION)
    facts = play_siblings(victim, victim, held)
    check_control(facts, held)
    out = json.loads(facts["attack_output"].strip().splitlines()[-1])
    children = {facts["setup"]["holder"], facts["setup"]["sleeper"]}
    assert held["token"] in out["found"] and children <= set(out["signalled"][str(int(signal.SIGKILL))]), out
    assert out["ipc"]["msg"] == out["ipc"]["mq"] == "found", out["ipc"]
    with pytest.raises(AssertionError, match="the attacker found"):
        check_attack(facts, held)
    with pytest.raises(AssertionError):
        check_victim(facts, held)
    assert facts["attacker_files"]  # the token, found by the host in the "attacker's" folders
    assert set(facts["victim_after"].values()) & {"gone", "Z"}, facts["victim_after"]  # the children it killed


def test_the_memory_probes_find_a_token_in_a_host_process(tmp_path):
    """/proc/PID/mem, process_vm_readv and ptrace are refused inside both sandboxes even against a session's
    own children, so their positive control is here: the probe, run on the host against one host process that
    holds a token, reads it every way (the probe's pids and folders are given, never all of the host's)."""
    require(os.geteuid() == 0, "root (to read another process's memory on the host)")
    held = new_secrets()
    (tmp_path / "sibling-secret.txt").write_text(held["token"])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, held["token"], held["name"]], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, SIBLING_TOKEN=held["token"]))
    try:
        port = int(holder.stdout.readline())
        params = {"pattern": PATTERN, "port": port, "name": held["name"], "key": held["key"], "pids": [holder.pid],
                  "roots": [str(tmp_path)], "signals": [0], "kill_all": False, "ipc": False}
        done = subprocess.run([sys.executable, "-c", with_params(PROBE, params)], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        where = out["found"][held["token"]]
        for place in (f"/proc/{holder.pid}/mem", f"process_vm_readv {holder.pid}", f"/proc/{holder.pid}/cmdline",
                      f"/proc/{holder.pid}/environ", str(tmp_path / "sibling-secret.txt"), "tcp", "unix"):
            assert place in where, (place, where)
        assert out["ptraced"] == [holder.pid] and out["vm_read"] == [holder.pid] and out["signalled"]["0"] == [holder.pid]
        assert holder.poll() is None  # attached, detached, and running on
    finally:
        holder.kill()
        holder.wait()


RANDOM_CODE = """
import json, os, random, secrets, tempfile, uuid
import numpy
print(json.dumps({"random.random": random.random(), "random.getrandbits": random.getrandbits(64),
                  "numpy.random.rand": numpy.random.rand(), "numpy.random.randint": int(numpy.random.randint(2**31)),
                  "os.urandom": os.urandom(8).hex(), "uuid.uuid4": str(uuid.uuid4()),
                  "secrets.token_hex": secrets.token_hex(8), "tempfile.mktemp": tempfile.mktemp(),
                  "hash('abc')": hash("abc")}))
"""


# The positive control: two children forked from one runtime that had drawn from numpy's generator.
FORKED_CODE = """
import json, os
import numpy
numpy.random.rand()
code = {code!r}
for n in range(2):
    pid = os.fork()
    if pid == 0:
        import contextlib
        with open(f"/tmp/forked-{{n}}.json", "w") as f, contextlib.redirect_stdout(f):
            exec(code)
        os._exit(0)
    os.waitpid(pid, 0)
print(json.dumps([json.load(open(f"/tmp/forked-{{n}}.json")) for n in range(2)]))
""".format(code=RANDOM_CODE)


def differ(seen: list[dict]) -> dict:
    """name -> whether every session drew a different value (hash('abc') is noted, not required:
    an interpreter's hash seed is fixed when it starts)."""
    return {name: len({str(s[name]) for s in seen}) == len(seen) for name in seen[0] if name != "hash('abc')"}


def test_fresh_sessions_share_no_random_state(sandbox_kind):
    """Three times: one session from the warm pool and a sibling opened beside it.  What each one's
    generators give first must differ in every session: seeded state copied from a common ancestor
    (numpy's never reseeds; tempfile's only when the pid changes, and inside its own pid namespace
    every session's runtime has the same pid) would repeat."""
    from agentic_vision import open_session
    from agentic_vision.sandboxing.executors import get_executor

    seen = []
    for _ in range(3):
        get_executor(sandbox_kind).warm()
        with open_session(sandbox_kind) as first, open_session(sandbox_kind) as sibling:
            for session in (first, sibling):
                result = session.run(RANDOM_CODE)
                assert result.outcome == "OUTCOME_OK", result.output
                seen.append(json.loads(result.output.strip().splitlines()[-1]))
    assert all(differ(seen).values()), (differ(seen), seen)
    # The check catches copied state: forked from one process, numpy repeats itself.
    with open_session(sandbox_kind, guard=False) as session:
        result = session.run(FORKED_CODE)
    assert result.outcome == "OUTCOME_OK", result.output
    forked = differ(json.loads(result.output.strip().splitlines()[-1]))
    assert not forked["numpy.random.rand"] and not forked["numpy.random.randint"], forked


HOG = """
blocks = []
while True:
    blocks.append(b"\\x01" * (64 << 20))
"""
# Computes until the host says the hog's run has ended (SIGUSR1), so the two runs overlap.
STEADY = """
import hashlib, os, signal, time
told = []
signal.signal(signal.SIGUSR1, lambda *_: told.append(1))
kept = b"\\x02" * (200 << 20)
print("started", os.getpid(), flush=True)
total, rounds, end = 0, 0, time.monotonic() + 50
while not told and time.monotonic() < end:
    total += sum(range(1000))
    rounds += 1
print(bool(told), rounds, total, hashlib.sha256(kept).hexdigest())
"""


def host_pid(session, inner: int) -> int:
    """The host pid of the session's process that is ``inner`` in its own pid namespace."""
    for pid in children_of(session_root_pid(session)):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:") and len(line.split()) > 2 and int(line.split()[-1]) == inner:
                return pid
    raise AssertionError(f"no process of the session is pid {inner} inside")


def test_a_memory_hog_ends_its_own_run_and_not_its_siblings(open_sandbox):
    hog, steady = open_sandbox(timeout=60), open_sandbox(timeout=60)
    limit = hog.executor.limits.memory_bytes
    steady_worker, steady_pids = steady.container or steady.worker_pid, children_of(session_root_pid(steady))
    started, results, printed = threading.Event(), {}, []

    def on_output(stream, text):
        printed.append(text)
        if "\n" in "".join(printed):
            started.set()

    def run_steady():
        results["steady"] = steady.run(STEADY, on_output=on_output)

    thread = threading.Thread(target=run_steady)
    thread.start()
    assert started.wait(30)
    hog_root = session_root_pid(hog)
    with Peak(lambda: rss(children_of(hog_root)), every=0.02) as peak:
        results["hog"] = hog.run(HOG)
    os.kill(host_pid(steady, int("".join(printed).split()[1])), signal.SIGUSR1)
    thread.join(60)
    hogged, steadied = results["hog"], results["steady"]
    # The hog's run ended by its own session's limit, held there by the host kernel.
    assert hogged.outcome != "OUTCOME_OK" and ("MemoryError" in hogged.output or "died" in hogged.output), hogged.output
    assert limit // 2 < peak.peak <= limit * 1.1, (peak.peak >> 20, limit >> 20)
    # The sibling's run went on meanwhile, in the same sandbox, and finished right.
    assert steadied.outcome == "OUTCOME_OK", steadied.output
    overlapped, rounds, total, digest = steadied.output.split()[-4:]
    assert overlapped == "True", steadied.output  # it was still running when the hog's run had ended
    assert int(total) == int(rounds) * sum(range(1000)) and digest == hashlib.sha256(b"\x02" * (200 << 20)).hexdigest()
    assert (steady.container or steady.worker_pid) == steady_worker
    assert all(Path(f"/proc/{pid}").exists() for pid in steady_pids), steady_pids
    assert steady.run("print(1)").output == "1\n" and hog.run("print(2)").output.endswith("2\n")


def test_siblings_as_an_unprivileged_host_user(home):
    """The attack of test_a_sibling_session_reaches_nothing_of_another with both sessions opened by a host
    process of uid 65534: the two sandboxes are then the same host user as each other and as the caller."""
    require(os.geteuid() == 0 and shutil.which("setpriv") and os.access(SYSTEM_PYTHON, os.X_OK),
            f"root (to become the unprivileged user), setpriv and the system's Python {SYSTEM_PYTHON}")
    held = new_secrets()
    found, = run_unprivileged(home, [step(play_siblings_unprivileged, held, **SESSION)])
    facts = facts_of(found)
    check_siblings(facts, held)
