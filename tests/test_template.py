"""Local sessions forked from the template (sandbox/template.py), judged from the host.

Each session must be as separate as a cold bubblewrap start: namespaces of its
own (read from the host's /proc/PID/ns links of its interpreter), no
capability, no_new_privs and the seccomp filter on the process that runs
model code, its own cgroup, and nothing left on the host once it is closed.
The template itself must survive a session and be replaced when it dies.
As root and as an unprivileged host user (unprivileged_host.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from session_host import children_of, is_session_root, nspids, parent_of
from unprivileged_host import UID, facts_of, home, needs_root, run_unprivileged, small_venv, step  # noqa: F401

NAMESPACES = ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup")
STATUS = ("Uid", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
FORKED = "forked from a template sandbox with the libraries imported"


def namespaces_of(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}


def status_of(pid: int) -> dict[str, str]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: fields[key].split()[0] for key in STATUS}


def play_host_view(session) -> dict:
    """What the host sees of a session (its interpreter is the first process's child)."""
    assert session.run("print(1)").output == "1\n"
    first = session.worker_pid
    interpreter = next(pid for pid in children_of(first) if pid != first and parent_of(pid) == first)
    return {
        "start": session.executor.enforcement["session start"],
        "levels": nspids(first),
        "root": is_session_root(first),
        "namespaces": namespaces_of(interpreter),
        "host namespaces": namespaces_of(os.getpid()),
        "status": status_of(interpreter),
        "cgroup": Path(f"/proc/{interpreter}/cgroup").read_text(),
    }


def check_forked(facts: dict, uid: int) -> None:
    assert facts["start"] == FORKED
    # pid 1 two pid namespaces below the host's: the template's, then its own.
    assert facts["root"] and len(facts["levels"]) == 3 and facts["levels"][-1] == 1, facts["levels"]
    for ns in NAMESPACES:
        assert facts["namespaces"][ns] != facts["host namespaces"][ns], ns
    status = facts["status"]
    assert status["Uid"] == str(uid)
    assert all(status[cap] == "0000000000000000" for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb")), status
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2"), status


def session_cgroup(text: str) -> str:
    """The session cgroup a /proc/PID/cgroup names ("" where there is none)."""
    names = {line.rsplit("/", 1)[-1] for line in text.splitlines() if "/session-" in line}
    assert len(names) <= 1, text
    return names.pop() if names else ""


def test_sessions_are_forked_into_namespaces_and_cgroups_of_their_own():
    from agentic_vision import open_session

    with open_session("local") as one, open_session("local") as two:
        facts = [play_host_view(one), play_host_view(two)]
        template = parent_of(parent_of(one.worker_pid))
        assert template == parent_of(parent_of(two.worker_pid))  # one template, two monitors
        template_ns = namespaces_of(template)
    for found in facts:
        check_forked(found, 65534 if os.geteuid() == 0 else os.getuid())
        for ns in NAMESPACES:
            assert found["namespaces"][ns] != template_ns[ns], ns
    for ns in NAMESPACES:
        assert facts[0]["namespaces"][ns] != facts[1]["namespaces"][ns], ns
    if os.geteuid() == 0 and session_cgroup(facts[0]["cgroup"]):
        assert session_cgroup(facts[0]["cgroup"]) != session_cgroup(facts[1]["cgroup"])


@pytest.mark.usefixtures("needs_root")
def test_sessions_are_forked_for_an_unprivileged_host_user_too(home):
    found = run_unprivileged(home, [step(play_host_view, guard=False), step(play_host_view, guard=False)])
    facts = [facts_of(f) for f in found]
    for one in facts:
        check_forked(one, UID)
        assert session_cgroup(one["cgroup"]) == ""  # no cgroup for this user: rlimits hold
    assert facts[0]["namespaces"]["pid"] != facts[1]["namespaces"]["pid"]


def session_cgroup_dirs(name: str) -> list[Path]:
    return [d for d in Path("/sys/fs/cgroup").glob(f"**/agentic-vision/{name}") if d.is_dir()]


def test_a_closed_session_leaves_no_process_and_no_cgroup_behind():
    from agentic_vision import open_session

    with open_session("local", timeout=30, guard=False) as session:
        session.run("import subprocess\nkids = [subprocess.Popen(['sleep', '300']) for _ in range(3)]")
        first = session.worker_pid
        pids = children_of(first) + [parent_of(first)]  # with the monitor
        assert len(pids) >= 6  # monitor, first process, interpreter, three sleeps
        interpreter = next(pid for pid in pids if parent_of(pid) == first)
        cgroup = session_cgroup(Path(f"/proc/{interpreter}/cgroup").read_text())
    end = time.monotonic() + 10
    while time.monotonic() < end and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.05)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    if cgroup:
        assert session_cgroup_dirs(cgroup) == []


def test_a_killed_template_ends_its_sessions_and_the_next_is_forked_from_a_new_one():
    from agentic_vision import open_session

    with open_session("local", timeout=30) as session:
        session.run("kept = 1")
        first = session.worker_pid
        template = parent_of(parent_of(first))
        os.kill(template, signal.SIGKILL)
        end = time.monotonic() + 10
        while time.monotonic() < end and Path(f"/proc/{first}").exists():
            time.sleep(0.05)
        assert not Path(f"/proc/{first}").exists(), "the session outlived its template"
        after = session.run("print(kept)")
        assert after.outcome.value == "OUTCOME_FAILED" and "NameError" in after.output, after.output
        again = session.run("print('fresh')")
        assert again.output == "fresh\n"
        assert len(nspids(session.worker_pid)) == 3
        assert parent_of(parent_of(session.worker_pid)) != template


START = """
import json, sys
sys.path.insert(0, sys.argv[1])
from agentic_vision import open_session
from session_host import nspids
for _ in range(int(sys.argv[2])):
    with open_session("local", guard=sys.argv[3] == "guard") as session:
        assert session.run("print(1)").output == "1\\n"
        print(json.dumps({"start": session.executor.enforcement["session start"], "levels": nspids(session.worker_pid)}))
"""


def how_sessions_start(env: dict, count: int = 1, guard: bool = True) -> tuple[list[dict], str]:
    """Opens ``count`` local sessions in a new host process with ``env``: how each started, and its stderr."""
    done = subprocess.run([sys.executable, "-c", START, str(Path(__file__).parent), str(count),
                           "guard" if guard else "no-guard"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()], done.stderr


def test_sessions_start_cold_when_the_setting_says_so():
    [facts], _ = how_sessions_start({**os.environ, "AGENTIC_VISION_SANDBOX_START": "cold"})
    assert facts["start"] == "cold (AGENTIC_VISION_SANDBOX_START=cold)"
    # A cold start's worker is bubblewrap, whose child (the broker) is pid 1 one level down.
    assert len(facts["levels"]) == 1


def test_a_bad_start_setting_is_one_line_before_any_work():
    env = {**os.environ, "AGENTIC_VISION_SANDBOX_START": "warm"}
    done = subprocess.run([sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "local", "print(1)"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "agentic-vision: AGENTIC_VISION_SANDBOX_START must be 'template' or 'cold', not 'warm'\n"


THREADED = """
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
"""


def test_where_the_template_cannot_run_sessions_start_cold_with_one_warning(tmp_path):
    """An interpreter whose start-up starts a thread cannot be forked safely: the template
    refuses it, and sessions start cold instead, saying so once."""
    site = small_venv(tmp_path / "venv")
    (site / "sitecustomize.py").write_text(THREADED)
    env = {**os.environ, "AGENTIC_VISION_SANDBOX_PYTHON": str(tmp_path / "venv" / "bin" / "python"),
           "AGENTIC_VISION_HOME": str(tmp_path / "home")}
    facts, stderr = how_sessions_start(env, count=2, guard=False)  # no RestrictedPython in that venv
    assert len(facts) == 2
    for found in facts:
        assert found["start"] == "cold (the sandbox template failed to start: the template runs 2 threads)"
        assert len(found["levels"]) == 1  # bubblewrap's own process: a cold start
    warnings = [line for line in stderr.splitlines() if "start cold" in line]
    assert len(warnings) == 1, stderr
