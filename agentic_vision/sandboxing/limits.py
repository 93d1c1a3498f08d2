"""Resource limits for a sandbox session, and the cgroups that enforce them.

Two layers: rlimits, which the runtime sets on itself (hard and soft) before
any model code runs, so nothing inside can raise them; and, where this
process may create cgroups (root, or a delegated cgroup v2 subtree), a
memory, pids and cpu cgroup per session, which also counts tmpfs pages and
every child process, and holds CPU spinners to a quota (cpu.max on v2,
cpu.cfs_quota_us on v1; RLIMIT_CPU would only end a process after the fact).  Without cgroups the process limit is an rlimit, which Linux
does not apply to processes of the host's root user: ``agentic-vision
sandbox info`` says which layer is in force.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 2048 * MiB
    max_processes: int = 64
    file_size_bytes: int = 256 * MiB
    open_files: int = 256
    workdir_bytes: int = 512 * MiB
    tmp_bytes: int = 256 * MiB
    shm_bytes: int = 64 * MiB
    cpus: float = 1.0  # CPU time per wall-clock second, for all processes of a session

    def rlimits(self, with_cgroup_memory: bool) -> dict:
        """What the runtime applies to itself: name -> value (soft = hard)."""
        limits = {
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_FSIZE": self.file_size_bytes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
        }
        if not with_cgroup_memory:
            # Counts private writable mappings: what numpy and PIL allocate.
            limits["RLIMIT_DATA"] = self.memory_bytes
        return limits

    def as_dict(self) -> dict:
        return asdict(self)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_paths() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except OSError:
        pass
    return paths


CPU_PERIOD_US = 100_000


class Cgroup:
    """One session's cgroup(s): memory, pids and cpu, on cgroup v2 or v1."""

    def __init__(self, dirs: list[Path], usage_file: Path | None = None) -> None:
        self.dirs = dirs
        self.usage_file = usage_file  # where its CPU time is counted, if anywhere

    def cpu_seconds(self) -> float | None:
        """CPU time used by everything in the session so far."""
        if self.usage_file is None:
            return None
        try:
            text = self.usage_file.read_text()
        except OSError:
            return None
        if self.usage_file.name == "cpu.stat":  # v2: usage_usec
            fields = dict(line.split() for line in text.splitlines() if line.strip())
            return int(fields["usage_usec"]) / 1e6
        return int(text) / 1e9  # v1 cpuacct.usage: nanoseconds

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def kill(self) -> None:
        for d in self.dirs:
            kill_file = d / "cgroup.kill"
            if kill_file.exists():
                try:
                    kill_file.write_text("1")
                    continue
                except OSError:
                    pass
            try:
                pids = (d / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, ValueError):
                    pass

    def remove(self) -> None:
        self.kill()
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


class CgroupFactory:
    """Finds where cgroups can be made; ``None`` from ``create`` when nowhere."""

    def __init__(self) -> None:
        self.mode, self.parents = self._probe()

    @property
    def available(self) -> bool:
        return self.mode is not None

    @property
    def cpu(self) -> bool:
        """Whether sessions get a CPU quota."""
        return self.mode == "v2" and self._v2_cpu or "cpu" in self.parents

    @staticmethod
    def cpu_setting(limits: Limits) -> str:
        quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
        return f"cpu quota {quota} us per {CPU_PERIOD_US} us = {limits.cpus:g} CPU"

    def _probe(self):
        own = _own_cgroup_paths()
        if (CGROUP_ROOT / "cgroup.controllers").exists():  # unified (v2) hierarchy
            base = CGROUP_ROOT / own.get("", "/").lstrip("/")
            for parent in (CGROUP_ROOT / "agentic-vision", base / "agentic-vision"):
                if self._prepare_v2(parent):
                    return "v2", {"": parent}
            return None, {}
        parents = {}
        # memory and pids are required; cpu (quota) and cpuacct (accounting) are used where present.
        for controller in ("memory", "pids", "cpu", "cpuacct"):
            root = CGROUP_ROOT / controller
            if not root.is_dir():
                if controller in ("memory", "pids"):
                    return None, {}
                continue
            parent = root / own.get(controller, "/").lstrip("/") / "agentic-vision"
            try:
                parent.mkdir(exist_ok=True)
                writable = os.access(parent, os.W_OK)
            except OSError:
                writable = False
            if not writable:
                if controller in ("memory", "pids"):
                    return None, {}
                continue
            if any(parent.resolve() == p.resolve() for p in parents.values()):
                continue  # co-mounted (cpu,cpuacct): one folder serves both
            parents[controller] = parent
        return "v1", parents

    _v2_cpu = False

    def _prepare_v2(self, parent: Path) -> bool:
        try:
            parent.mkdir(exist_ok=True)
            enabled = (parent.parent / "cgroup.subtree_control").read_text().split()
            for ctl in ("memory", "pids", "cpu"):
                if ctl not in enabled:
                    try:
                        (parent.parent / "cgroup.subtree_control").write_text(f"+{ctl}")
                    except OSError:
                        if ctl != "cpu":
                            raise
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
        except OSError:
            return False
        try:
            (parent / "cgroup.subtree_control").write_text("+cpu")
            self._v2_cpu = True
        except OSError:
            pass
        return True

    def create(self, limits: Limits) -> Cgroup | None:
        if self.mode is None:
            return None
        # The owner's pid in the name lets a later sweep tell leftovers from live sessions.
        name = f"session-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            if self.mode == "v2":
                d = self.parents[""] / name
                d.mkdir()
                (d / "memory.max").write_text(str(limits.memory_bytes))
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.max_processes))
                if self._v2_cpu:
                    (d / "cpu.max").write_text(f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")
                return Cgroup([d], d / "cpu.stat")
            dirs = {}
            for controller, parent in self.parents.items():
                dirs[controller] = parent / name
                dirs[controller].mkdir()
            mem, pids = dirs["memory"], dirs["pids"]
            (mem / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            memsw = mem / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                try:
                    memsw.write_text(str(limits.memory_bytes))
                except OSError:
                    pass
            (pids / "pids.max").write_text(str(limits.max_processes))
            if "cpu" in dirs:
                (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(max(1000, int(limits.cpus * CPU_PERIOD_US))))
            usage = next((d / "cpuacct.usage" for d in dirs.values() if (d / "cpuacct.usage").exists()), None)
            return Cgroup(list(dirs.values()), usage)
        except OSError:
            return None

    def sweep(self) -> None:
        """Removes session cgroups left behind by processes that were killed."""
        for parent in self.parents.values():
            for d in parent.glob("session-*"):
                try:
                    owner = int(d.name.split("-")[1])
                    os.kill(owner, 0)
                    continue  # its owner is alive: not ours to touch
                except (ValueError, IndexError, ProcessLookupError):
                    pass
                except PermissionError:
                    continue
                cgroup = Cgroup([d])
                cgroup.kill()
                try:
                    d.rmdir()
                except OSError:
                    pass
