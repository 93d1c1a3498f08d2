"""The OS and channel attacks again, with the host process an unprivileged user.

A child process runs as uid 65534 and opens the local sandboxes
(unprivileged_host.py): bubblewrap then runs as that user itself, with no
uid to drop to and no cgroup, so the sandbox's processes are the same host
user as the host process that holds their channel.  The attacks are the
system call probes, sysctl writes, keyring, memory folders and /proc of
test_attacks_os.py, stray processes, and every entry of the ``ATTACKS`` of
test_attacks_channel.py (the hostile runtime in place of the broker, swapped
in with the same ``entry`` option) and test_attacks_broker.py (model code
against the real broker).  Each is played in its own session by the child
and judged here by the same checks as the root version: the host's peak
memory and wall time as the child measured them, one note, that nothing
forged reached the host, and a working session afterwards.  One child plays
many attacks (two children, side by side, the channel attacks), since a
child's start costs more than most attacks.

Every channel attack runs here.  The CPU quota has no unprivileged version
(there is no cgroup to hold it; the enforcement report says so); the Docker
sandbox is not run (see unprivileged_host.py).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

import test_attacks_broker
import test_attacks_channel
from host_effects import check_honest, execution
from test_attacks_os import (
    PROC_CODE,
    SHM_CODE,
    SPINNERS_CODE,
    check_memory_folders,
    check_probes,
    check_proc,
    check_sysctls,
    children_of,
    host_sysctls,
    host_uids,
    probe_code,
    sysctl_code,
)
from unprivileged_host import UID, facts_of, finish, home, needs_root, run_unprivileged, start_unprivileged, step  # noqa: F401

pytestmark = pytest.mark.usefixtures("needs_root")


# -- the OS attacks -------------------------------------------------------------------------------

KEYRING_CODE = (
    "import ctypes, json\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "nr = (248, 250) if __import__('platform').machine() == 'x86_64' else (217, 219)\n"
    "planted = libc.syscall(ctypes.c_long(nr[0]), b'user', b'planted', b'x', ctypes.c_long(1), ctypes.c_long(-4))\n"
    "linked = libc.syscall(ctypes.c_long(nr[1]), ctypes.c_long(1), ctypes.c_long(-3), 0, 0)\n"  # join session keyring
    "print(json.dumps({'planted': planted, 'linked': linked, 'errno': ctypes.get_errno()}))\n"
)


def play_code(session, code: str) -> dict:
    """Runs ``code``, which prints JSON last; with the host uids of the sandbox's processes."""
    result = session.run(code)
    return {"outcome": result.outcome.value, "output": result.output, "enforcement": session.executor.enforcement,
            "uids": {pid: host_uids(pid) for pid in children_of(session.worker_pid)}}


def play_stray_processes(session) -> dict:
    """Processes that ignore SIGTERM in their own sessions, then a run past its
    timeout: with no cgroup here, what ends the sandbox must end them too."""
    spinning = session.run(SPINNERS_CODE).output
    before = children_of(session.worker_pid)
    late = session.run("import time; time.sleep(60)", timeout=1).outcome.value
    survivors = [pid for pid in before if wait_gone(pid)]
    return {"spinning": spinning, "before": len(before), "late": late, "survivors": survivors,
            "after": execution(session.run("print(1)"))}


def wait_gone(pid: int, timeout: float = 10) -> bool:
    """True if ``pid`` is still there after ``timeout`` s (a zombie is gone)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        except OSError:
            return False
        time.sleep(0.05)
    return True


def printed(facts: dict) -> dict:
    assert facts["outcome"] == "OUTCOME_OK", facts["output"]
    # Every process of the sandbox is the unprivileged caller on the host.
    assert len(facts["uids"]) >= 2 and all(set(u) == {UID} for u in facts["uids"].values()), facts["uids"]
    return json.loads(facts["output"].strip().splitlines()[-1])


def keys_of_uid() -> list[str]:
    rows = Path("/proc/key-users").read_text().splitlines() if Path("/proc/key-users").exists() else []
    return [row for row in rows if row.split(":")[0].strip() == str(UID)]


@pytest.fixture(scope="module")
def os_attacks(home):
    """Every OS attack played in one child, with what the host looked like before."""
    marker = Path("/tmp") / f"agentic-vision-pwned-{uuid.uuid4().hex[:8]}"
    before = {"sysctls": host_sysctls(), "keys": keys_of_uid(), "marker": marker}
    codes = {"probes": probe_code(), "sysctls": sysctl_code(marker), "keyring": KEYRING_CODE, "shm": SHM_CODE, "proc": PROC_CODE}
    session = {"timeout": 60, "guard": False}
    steps = [step(play_code, code, **session) for code in codes.values()] + [step(play_stray_processes, **session)]
    found = [facts_of(f) for f in run_unprivileged(home, steps)]
    return before, {**dict(zip(codes, found)), "stray processes": found[-1]}


def test_syscall_probes_as_an_unprivileged_host_user(os_attacks):
    _, facts = os_attacks
    check_probes(printed(facts["probes"]))
    assert facts["probes"]["enforcement"]["host user"] == f"host uid {UID} (the caller)"


def test_sysctls_as_an_unprivileged_host_user(os_attacks):
    before, facts = os_attacks
    check_sysctls(printed(facts["sysctls"]), before["sysctls"], before["marker"])


def test_keyring_as_an_unprivileged_host_user(os_attacks):
    before, facts = os_attacks
    out = printed(facts["keyring"])
    assert (out["planted"], out["linked"], out["errno"]) == (-1, -1, 1)  # EPERM
    assert keys_of_uid() == before["keys"]


def test_memory_folders_and_proc_as_an_unprivileged_host_user(os_attacks, home):
    _, facts = os_attacks
    check_memory_folders(printed(facts["shm"]))
    here = str(Path(__file__).resolve().parent.parent)
    check_proc(printed(facts["proc"]), [str(home), here, sys.prefix])


# -- the channel attacks ------------------------------------------------------------------------


CHANNEL_MODULES = (test_attacks_channel, test_attacks_broker)
ATTACKS = {**test_attacks_channel.ATTACKS, **test_attacks_broker.ATTACKS}


@pytest.fixture(scope="module")
def channel_attacks(home):
    """id -> what the host saw of that attack; the hostile runtime's and the model
    code's attacks in two children at once (most of their time is waiting)."""
    children = [
        (list(module.ATTACKS), start_unprivileged(home, [step(play, *args, **options)
                                                         for options, play, _, args in module.ATTACKS.values()]))
        for module in CHANNEL_MODULES
    ]
    found = {}
    for names, child in children:
        found.update(zip(names, finish(child)))
    return found


@pytest.mark.parametrize("attack", ATTACKS)
def test_channel_attack_as_an_unprivileged_host_user(channel_attacks, attack):
    _, _, check, _ = ATTACKS[attack]
    check(facts_of(channel_attacks[attack]))


@pytest.mark.parametrize("module", CHANNEL_MODULES, ids=lambda m: m.__name__)
def test_every_channel_attack_is_played_unprivileged_too(module):
    """A play_* added to a channel attack module must be listed in its ATTACKS."""
    plays = {name for name in vars(module) if name.startswith("play_")}
    assert plays == {play.__name__ for _, play, _, _ in module.ATTACKS.values()}


def test_stray_processes_end_with_their_sandbox_as_an_unprivileged_host_user(os_attacks):
    _, facts = os_attacks
    out = facts["stray processes"]
    assert out["spinning"] == "spinning\n" and out["before"] >= 6, out  # bubblewrap, broker, interpreter, 4 spinners
    assert out["late"] == "OUTCOME_DEADLINE_EXCEEDED"
    assert out["survivors"] == [], out
    check_honest(out["after"])
