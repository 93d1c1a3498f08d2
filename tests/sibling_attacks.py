"""Two sessions open at once: an attacker hunts a victim's secrets; the facts, and the checks on them.

``play_siblings`` gives the victim a token (files in /work, /tmp and
/dev/shm, two long-running children, one holding it in memory, environment
and command line and serving it on 127.0.0.1 and an abstract unix socket,
System V and POSIX IPC objects), runs the probe (sibling_probes.py) in the
victim first (the positive control) and then in the attacker, and returns
JSON facts: what each probe printed, and what the host saw -- the victim's
processes (host pids) and their states before and after, its files read
through /proc/PID/root, the attacker's folders searched for the token, the
victim's own view afterwards.  ``check_siblings`` judges them; the host
process may be root (test_attacks_siblings.py) or an unprivileged user
(``play_siblings_unprivileged``, through unprivileged_host.py).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from session_host import children_of, inside_pid, session_root_pid
from sibling_probes import FOLDERS, HOLDER, PATTERN, PROBE, SECRET_FILE, VICTIM, VICTIM_AGAIN, with_params

SESSION = {"guard": False, "timeout": 60}  # the attacker got past the guard; the OS boundary must hold alone


def printed_json(session, code: str) -> dict:
    result = session.run(code)
    assert result.outcome == "OUTCOME_OK", result.output[-3000:]
    return json.loads(result.output.strip().splitlines()[-1])


def probe_params(held: dict, victim: dict, *, signals, kill_all: bool) -> dict:
    return {"pattern": PATTERN, "port": victim["port"], "name": held["name"], "key": held["key"],
            "pids": None, "roots": None, "signals": signals, "kill_all": kill_all, "ipc": True}


def host_states(pids) -> dict:
    """pid -> its state letter (R, S, T for stopped ...) as the host kernel has it; "gone" if it ended."""
    states = {}
    for pid in pids:
        try:
            states[str(pid)] = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            states[str(pid)] = "gone"
    return states


def host_files(session) -> dict:
    """The victim's secret files, read by the host through a process of the session."""
    root = f"/proc/{inside_pid(session)}/root"
    found = {}
    for folder in FOLDERS:
        try:
            found[folder] = Path(root + folder, SECRET_FILE).read_text()
        except OSError as exc:
            found[folder] = type(exc).__name__
    return found


def host_search(session, token: str) -> list[str]:
    """Files in the session's own folders, as the host sees them, that hold the token."""
    root = f"/proc/{inside_pid(session)}/root"
    hits = []
    for folder in FOLDERS:
        for dirpath, _, files in os.walk(root + folder):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.path.isfile(path) and not os.path.islink(path) and token.encode() in Path(path).read_bytes():
                        hits.append(path)
                except OSError:
                    pass
    return hits


def play_siblings(victim, attacker, held: dict) -> dict:
    """The victim holds ``held`` (sibling_probes.new_secrets()); the attacker hunts it."""
    attacker.run("pass")  # both sandboxes are up before the victim's secrets exist
    setup = printed_json(victim, with_params(VICTIM, {**held, "holder": HOLDER}))
    control = printed_json(victim, with_params(PROBE, probe_params(held, setup, signals=[0], kill_all=False)))
    victim_pids = children_of(session_root_pid(victim))
    facts = {"setup": setup, "control": control, "victim_before": host_states(victim_pids),
             "victim_files_before": host_files(victim), "victim_worker": str(victim.container or victim.worker_pid)}
    attack = attacker.run(with_params(PROBE, probe_params(held, setup, signals=[0, signal.SIGSTOP, signal.SIGKILL],
                                                          kill_all=True)))
    facts.update(attack_outcome=attack.outcome.value, attack_output=attack.output,
                 attacker_pids=len(children_of(session_root_pid(attacker))))
    facts["victim_after"] = host_states(victim_pids)
    facts["victim_files_after"] = host_files(victim)
    facts["attacker_files"] = host_search(attacker, held["token"])
    again = victim.run(with_params(VICTIM_AGAIN, {}))
    facts["victim_again"] = {"outcome": again.outcome.value, "output": again.output}
    facts["victim_answers"] = victim.run("print(1)").output
    facts["victim_worker_after"] = str(victim.container or victim.worker_pid)
    return facts


def play_siblings_unprivileged(attacker, held: dict) -> dict:
    """A step for unprivileged_host.py: the victim is a second session of the attacker's executor
    (the same sandbox environment, opened as the same unprivileged host user)."""
    from agentic_vision.sandboxing.session import Session

    with Session(attacker.executor, [], attacker.timeout, attacker.guard) as victim:
        return play_siblings(victim, attacker, held)


def check_control(facts: dict, held: dict) -> None:
    """The probe, run in the victim itself, finds everything the attacker will look for."""
    setup, out = facts["setup"], facts["control"]
    assert held["token"] in out["found"], out["found"]
    where = out["found"][held["token"]]
    holder, sleeper = setup["holder"], setup["sleeper"]
    for folder in FOLDERS:
        assert f"{folder}/{SECRET_FILE}" in where, (folder, where)
    for place in (f"/proc/{holder}/cmdline", f"/proc/{holder}/environ", f"/proc/{holder}/mem", "tcp", "unix"):
        assert place in where, (place, where)
    assert out["seen"][str(sleeper)] == "sleep" and str(holder) in out["seen"], out["seen"]
    assert {holder, sleeper} <= set(out["signalled"]["0"]), out["signalled"]
    assert out["net"] == {"tcp": "connected", "unix": "connected"} and out["listed"] == {"tcp": True, "unix": True}, out
    assert setup["ipc"] == {"msg": True, "sem": True, "mq": True, "posix_sem": True}, setup["ipc"]
    assert "msgrcv" in where and "mq_receive" in where, where
    assert out["ipc"] == {"msg": "found", "sem": "found", "sysvipc listed": ["msg", "sem"], "mq": "found",
                          "posix_sem": "found"}, out["ipc"]
    assert out["files_read"] >= 3


def check_attack(facts: dict, held: dict) -> None:
    """The attacker's probe found nothing of the victim's, and reached nothing but its own processes."""
    assert facts["attack_outcome"] == "OUTCOME_OK", facts["attack_output"][-3000:]
    out = json.loads(facts["attack_output"].strip().splitlines()[-1])
    assert out["found"] == {} and out["named"] == [], ("the attacker found", out["found"], out["named"])
    assert held["token"] not in facts["attack_output"]
    # What it can list are its own processes: no more than the host counts in its session.
    assert "sleep" not in out["seen"].values() and len(out["seen"]) <= facts["attacker_pids"], \
        (out["seen"], facts["attacker_pids"])
    own = {int(pid) for pid in out["seen"]} | set(out["threads"])
    for sig, reached in out["signalled"].items():
        assert sig.startswith("all") or set(reached) <= own, (sig, reached, own)
    assert out["ptraced"] == [] and out["vm_read"] == [], out
    assert out["net"]["tcp"] == "ECONNREFUSED" and out["net"]["unix"] == "ECONNREFUSED", out["net"]
    assert out["listed"] == {"tcp": False, "unix": False}, out["listed"]
    assert out["ipc"] == {"msg": "ENOENT", "sem": "ENOENT", "sysvipc listed": [], "mq": "ENOENT",
                          "posix_sem": "ENOENT"}, out["ipc"]
    assert facts["attacker_files"] == [], facts["attacker_files"]


def check_victim(facts: dict, held: dict) -> None:
    """On the host, every process of the victim is still there and not stopped; its files and
    sockets are as it left them, and it still answers, in the same sandbox."""
    before, after = facts["victim_before"], facts["victim_after"]
    assert len(before) >= 4 and "gone" not in before.values(), before  # the sandbox, its runtime and two children
    assert after.keys() == before.keys() and not [s for s in after.values() if s in ("gone", "T", "t", "Z", "X")], \
        (before, after)
    assert facts["victim_files_before"] == facts["victim_files_after"] == dict.fromkeys(FOLDERS, held["token"])
    assert facts["victim_again"]["outcome"] == "OUTCOME_OK", facts["victim_again"]["output"][-3000:]
    again = json.loads(facts["victim_again"]["output"].strip().splitlines()[-1])
    assert again == {"files": [held["token"]] * 3, "children": [None, None], "served": [held["token"]] * 2}, again
    assert facts["victim_answers"] == "1\n" and facts["victim_worker_after"] == facts["victim_worker"]


def check_siblings(facts: dict, held: dict) -> None:
    check_control(facts, held)
    check_attack(facts, held)
    check_victim(facts, held)
