"""The host's view of a sandbox session, for judging attacks by their effects on the host:
its processes (host pids), its cgroup files, and the usage of its memory-backed folders
read by the host kernel through /proc/PID/root -- never what the sandbox prints."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def descendants(root: int) -> set[int]:
    """root's descendants (host pids), root itself left out."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children_of(root: int) -> list[int]:
    """root and all its descendants (host pids)."""
    return sorted({root} | descendants(root))


def nspids(pid: int) -> list[int]:
    """pid's pid in each pid namespace it is in, the host's first (NSpid); [] once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(n) for n in line.split()[1:]]
    except OSError:
        pass
    return []


def is_session_root(pid: int) -> bool:
    """Whether pid is the first process (the broker) of a local sandbox session: pid 1 of its
    own pid namespace, one below the host's for a cold start (bubblewrap's, running
    broker.py), two below for a session forked from the template (whose own pid 1, one
    below, runs template.py and is no session)."""
    levels = nspids(pid)
    if len(levels) < 2 or levels[-1] != 1:
        return False
    if len(levels) >= 3:
        return True
    try:
        return b"broker.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def session_root_pid(session) -> int:
    """The host pid at the top of the session: its container's first process, or the local worker."""
    if session.kind == "docker":
        import docker

        client = docker.from_env()
        try:
            return int(client.api.inspect_container(session.container)["State"]["Pid"])
        finally:
            client.close()
    return session.worker_pid


def inside_pid(session) -> int:
    """A host pid of a process inside the session's mounts (its /work is a tmpfs there)."""
    for pid in children_of(session_root_pid(session)):
        try:
            mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        except OSError:
            continue
        if any(line.split()[4] == "/work" and " - tmpfs " in line for line in mounts):
            return pid
    raise AssertionError("no process of the session has its /work")


def folder_used(pid: int, folder: str) -> int:
    """Bytes in use on the file system mounted at ``folder`` inside, as the host kernel counts them."""
    st = os.statvfs(f"/proc/{pid}/root{folder}")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> Path | None:
    """``pid``'s cgroup file of ``controller`` (cgroup v1 name or v2 name), if the host has it."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            f = Path("/sys/fs/cgroup") / controllers / path.lstrip("/") / v1_name
            if f.exists():
                return f
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            f = Path("/sys/fs/cgroup") / path.lstrip("/") / v2_name
            if f.exists():
                return f
    return None


def rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class Peak:
    """Samples ``measure()`` every few milliseconds in a thread while the block runs; ``.peak``."""

    def __init__(self, measure, every: float = 0.005) -> None:
        self.measure, self.every, self.peak, self.samples = measure, every, 0, 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = self.measure()
            except OSError:
                value = 0
            self.peak, self.samples = max(self.peak, value), self.samples + 1
            time.sleep(self.every)

    def __enter__(self) -> "Peak":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
