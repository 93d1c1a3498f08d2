"""The Docker sandbox: the runtime as the main process of a hardened container.

Each session gets its own container of the sandbox image, started with
``docker run -i``: the runtime's stdin/stdout are attached to the docker CLI
child process, so ``Worker`` speaks the protocol through it exactly as it does
with bubblewrap (inputs go in and images come out over that channel; nothing
of the host is mounted).  The container has no network, a read-only root,
size-capped tmpfs for /work and /tmp, no capabilities, a non-root user and
cgroup limits on memory (no swap), processes and CPU.  Ready containers wait
in a small pool; none ever serves two sessions.

Killing the docker CLI does not stop its container, so every kill ends in a
``docker rm -f`` by name; containers carry their owner's pid in a label, and
the next executor start removes those whose owner died without cleaning up.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

from ..errors import SandboxUnavailable
from ..paths import state_dir
from . import seccomp
from .limits import Limits
from .pool import PooledExecutor, WorkerPool
from . import image_source
from .runtime_files import CHECKOUT
from .worker import Worker

DEFAULT_IMAGE = "agentic-vision/sandbox:latest"
INSIDE_PYTHON = "/opt/venv/bin/python"  # the image's interpreter (for benchmarks)
SANDBOX_UID = 10001  # the image's user `sandbox`
READY_TIMEOUT = 90.0
CLI_TIMEOUT = 60.0
BUILD_HINT = "run 'agentic-vision sandbox build'"
LABEL = "org.agentic-vision"
HASH_LABEL = "org.agentic-vision.sandbox.hash"


def image_name() -> str:
    return os.environ.get("AGENTIC_VISION_DOCKER_IMAGE") or DEFAULT_IMAGE


# -- talking to the engine --------------------------------------------------------------


def docker_cli(*args: str, check: bool = True, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs the docker CLI; a missing CLI or engine is a one-line SandboxUnavailable."""
    docker = shutil.which("docker")
    if docker is None:
        raise SandboxUnavailable(
            "the docker command is not installed: install Docker (https://docs.docker.com/engine/install/) "
            "or use --sandbox local"
        )
    try:
        done = subprocess.run([docker, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable(f"the Docker engine did not answer 'docker {args[0]}' within {timeout:.0f} s") from None
    if done.returncode != 0:
        _raise_engine_problem(done.stderr)
        if check:
            raise SandboxUnavailable(f"'docker {args[0]}' failed: {_last_line(done.stderr)}")
    return done


def _raise_engine_problem(stderr: str) -> None:
    """Turns what the CLI says about an unreachable engine into advice; returns otherwise."""
    text = stderr.lower()
    if "permission denied" in text and "docker daemon socket" in text:
        raise SandboxUnavailable(
            "permission denied on the Docker socket: add yourself to the docker group "
            "('sudo usermod -aG docker $USER', then log in again) or use sudo"
        )
    if "cannot connect to the docker daemon" in text or "is the docker daemon running" in text:
        raise SandboxUnavailable(
            "the Docker engine is not running: start it (e.g. 'sudo systemctl start docker' or scripts/start-docker.sh)"
        )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def source_hash(root: Path = CHECKOUT) -> str | None:
    """The hash scripts/build-sandbox-image.sh puts in the image's label; None outside a checkout."""
    return image_source.source_hash(root)


def inspect_image(image: str) -> dict:
    """The image's metadata; SandboxUnavailable when the engine or a current image is missing."""
    done = docker_cli("image", "inspect", image, check=False)
    if done.returncode != 0:
        if "no such image" in done.stderr.lower():
            raise SandboxUnavailable(f"the sandbox image {image} is not built: {BUILD_HINT}")
        raise SandboxUnavailable(f"docker cannot inspect the image {image}: {_last_line(done.stderr)}")
    try:
        info = json.loads(done.stdout)[0]
    except (ValueError, IndexError):
        raise SandboxUnavailable(f"docker answered 'image inspect {image}' with no image data: {BUILD_HINT}") from None
    # Only images built by our script carry a real hash; a hand-built ("unknown")
    # or foreign image is taken as it is.
    have = ((info.get("Config") or {}).get("Labels") or {}).get(HASH_LABEL, "unknown")
    want = source_hash()
    if want and have not in ("", "unknown") and have != want:
        raise SandboxUnavailable(f"the sandbox image {image} is out of date with this checkout's sandbox/ files: {BUILD_HINT}")
    return info


_problems: dict[str, tuple[float, str | None]] = {}
PROBLEM_TTL = 10.0


def docker_problem(image: str | None = None) -> str | None:
    """Why the Docker sandbox cannot start (one line), or None; cached for a few seconds."""
    image = image or image_name()
    now = time.monotonic()
    cached = _problems.get(image)
    if cached and now - cached[0] < PROBLEM_TTL:
        return cached[1]
    try:
        inspect_image(image)
        problem = None
    except SandboxUnavailable as exc:
        problem = str(exc)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        problem = f"docker does not answer: {exc}"
    _problems[image] = (now, problem)
    return problem


def docker_ready() -> bool:
    return docker_problem() is None


# -- orphans ----------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): tells a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_namespace() -> str:
    # Pids mean nothing across pid namespaces (two dev containers sharing one engine).
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {
        f"{LABEL}.session": "1",
        f"{LABEL}.owner": str(pid),
        f"{LABEL}.owner-start": _start_time(pid) or "",
        f"{LABEL}.owner-ns": _pid_namespace(),
    }


def remove_containers(names) -> None:
    """docker rm -f; the container is gone (killed and removed) when this returns."""
    names = sorted(names)
    if not names:
        return
    try:
        docker_cli("rm", "-f", *names, check=False)  # "No such container" is fine: gone already
    except SandboxUnavailable:
        pass  # the engine is gone: nothing runs there; a later start sweeps what is left


def sweep_orphans() -> list[str]:
    """Removes session containers whose owner process died without removing them."""
    fmt = "\t".join(
        ["{{.Names}}"] + [f'{{{{.Label "{LABEL}.{key}"}}}}' for key in ("owner", "owner-start", "owner-ns")]
    )
    out = docker_cli("ps", "-a", "--no-trunc", "--filter", f"label={LABEL}.session=1", "--format", fmt).stdout
    ns = _pid_namespace()
    orphans = []
    for line in out.splitlines():
        name, owner, started, owner_ns = (line.split("\t") + ["", "", ""])[:4]
        if owner_ns != ns or not owner.isdigit():
            continue  # another pid namespace's: its owner cannot be checked from here
        now = _start_time(int(owner))
        if now is None or (started and now != started):  # dead, or its pid reused since
            orphans.append(name)
    remove_containers(orphans)
    return orphans


# -- the executor -----------------------------------------------------------------------


class DockerWorker(Worker):
    """A Worker whose process is `docker run -i`; ``container`` is the container's name."""

    def close(self, grace: float = 0.0) -> None:
        # The runtime keeps nothing to flush, so removing the container is the
        # whole clean-up; waiting for a polite exit costs ~0.5 s more.
        self.kill()


class DockerExecutor(PooledExecutor):
    kind = "docker"

    def __init__(
        self,
        pool_size: int = 1,
        image: str | None = None,
        limits: Limits | None = None,
        cpus: float | None = None,
    ) -> None:
        self.image = image or image_name()
        self.limits = limits or Limits()
        self.pool_size = pool_size
        self.cpus = cpus if cpus is not None else float(os.environ.get("AGENTIC_VISION_DOCKER_CPUS", "1"))
        self.image_id = inspect_image(self.image)["Id"]  # raises the one-line start-up errors
        self.id = uuid.uuid4().hex[:12]
        self._live: dict[str, DockerWorker] = {}  # every container started and not yet removed
        self._lock = threading.Lock()
        self._started = False
        self.pool = WorkerPool(self.spawn, pool_size, "docker-pool")
        sweep_orphans()
        atexit.register(self.shutdown)

    @property
    def cache_key(self) -> str:
        """The image id: changes whenever what is installed in the sandbox may have changed."""
        return self.image_id

    @property
    def enforcement(self) -> dict:
        mib = lambda n: f"{n // 2**20} MiB"  # noqa: E731
        return {
            "memory": f"cgroup (--memory {mib(self.limits.memory_bytes)}, no swap)",
            "processes": f"cgroup (--pids-limit {self.limits.max_processes})",
            "file size": "rlimit (RLIMIT_FSIZE)",
            "open files": "rlimit (RLIMIT_NOFILE)",
            "working directory": f"tmpfs of {mib(self.limits.workdir_bytes)}",
            "cpu": f"cgroup (--cpus {self.cpus:g})",
            "network": "none",
        }

    def run_argv(self, name: str) -> list[str]:
        lim = self.limits
        tmpfs = f"rw,uid={SANDBOX_UID},gid={SANDBOX_UID}"  # Docker adds noexec,nosuid,nodev
        # RLIMIT_NPROC counts every process of uid 10001 on the host, across all
        # containers: the pids cgroup is the per-session limit.  RLIMIT_DATA is
        # not needed either: the memory cgroup holds.
        rlimits = {k: v for k, v in lim.rlimits(with_cgroup_memory=True).items() if k != "RLIMIT_NPROC"}
        argv = [
            "docker", "run", "-i", "--rm", "--pull", "never", "--name", name,
            "--network", "none", "--read-only",
            "--tmpfs", f"/work:{tmpfs},mode=0755,size={lim.workdir_bytes}",
            "--tmpfs", f"/tmp:{tmpfs},mode=1777,size={lim.tmp_bytes}",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--security-opt", f"seccomp={seccomp.docker_profile_file(state_dir())}",
            "--user", f"{SANDBOX_UID}:{SANDBOX_UID}",
            "--memory", str(lim.memory_bytes), "--memory-swap", str(lim.memory_bytes),
            "--pids-limit", str(lim.max_processes),
            "--cpus", f"{self.cpus:g}",
            "--ulimit", f"nofile={lim.open_files}:{lim.open_files}",
            "--ulimit", f"fsize={lim.file_size_bytes}:{lim.file_size_bytes}",
            "--ulimit", "core=0:0",
            # Private IPC (not "none"): a small /dev/shm, so multiprocessing locks work as in the local sandbox.
            "--ipc", "private", "--shm-size", str(64 * 2**20),
            "--cgroupns", "private", "--hostname", "sandbox",
            # docker-init as pid 1 reaps orphaned children and lets the runtime
            # die of signals like any process (pid 1 ignores unhandled ones).
            "--init",
            # The protocol (images included) must not also be written to a log file.
            "--log-driver", "none",
            "--env", f"AGENTIC_VISION_RLIMITS={json.dumps(rlimits)}",
        ]
        argv += [f"--label={key}={value}" for key, value in owner_labels().items()]
        argv += [f"--label={LABEL}.executor={self.id}", self.image]
        return argv

    def spawn(self) -> DockerWorker:
        """A new container with a ready runtime (a cold start)."""
        name = f"agentic-vision-{os.getpid()}-{uuid.uuid4().hex[:8]}"

        def remove() -> None:  # Worker.kill has ended the docker CLI; now the container
            with self._lock:
                mine = self._live.pop(name, None) is not None
            if mine:  # else shutdown() removes it
                remove_containers([name])

        worker = DockerWorker(self.run_argv(name), on_kill=remove, describe="Docker sandbox")
        worker.container = name
        with self._lock:
            self._live[name] = worker
            self._started = True
        try:
            worker.wait_ready(READY_TIMEOUT)
        except SandboxUnavailable:
            worker.kill()
            raise
        return worker

    def shutdown(self) -> None:
        """Removes every container this executor started, in use or pooled (also at exit)."""
        self.pool.close()  # its workers are among the live ones, removed below
        with self._lock:
            live, self._live = self._live, {}
            if not self._started:
                return  # nothing to clean up: no docker call at exit
            self._started = False
        for worker in live.values():
            worker.kill()  # ends the docker CLI; the containers go in one call below
        try:
            # By label too: a container whose `docker run` was cut short before
            # it started has no Worker left to remove it.
            found = docker_cli("ps", "-aq", "--filter", f"label={LABEL}.executor={self.id}").stdout.split()
        except SandboxUnavailable:
            found = []
        remove_containers(set(found) | set(live))
