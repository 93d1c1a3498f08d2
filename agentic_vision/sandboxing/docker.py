"""The Docker sandbox: the runtime as the main process of a hardened container.

Everything goes through the Engine API (the `docker` SDK), so the engine may
be local or remote (``DOCKER_HOST``, a Docker context, ``docker_host=``) and
no ``docker`` CLI is needed.  Each session gets its own container of the
sandbox image; the host attaches to its stdin/stdout before starting it, and
``Worker`` speaks the protocol over that attach socket exactly as it does
over bubblewrap's pipes (inputs go in and images come out over it; nothing of
the host is mounted).  The container has no network, a read-only root,
size-capped tmpfs for /work and /tmp, no capabilities, no-new-privileges, a
non-root user and cgroup limits on memory (no swap), processes and CPU.
Ready containers wait in a small pool; none ever serves two sessions.

Clean-up cannot rely on local pids (the engine may serve several machines):
every container carries its executor's owner id and a lease whose deadline,
in the engine's clock, is part of its name (names are the one thing of a
container that can change after it is created; labels cannot).  The owner
renews the lease from a background thread; any executor that starts on the
engine, and every renewal round, removes other owners' containers whose lease
has run out.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import ssl
import threading
import time
import uuid
from datetime import datetime

import docker
from typing import Sequence

from ..errors import SandboxUnavailable
from .channel_bridge import as_socket
from .docker_engine import Engine, connect, explain, image_name, inspect_image
from . import seccomp
from .limits import Limits
from .pool import PooledExecutor, WorkerPool
from .worker import SocketChannel, Worker

INSIDE_PYTHON = "/opt/venv/bin/python"  # the image's interpreter (for benchmarks)
SANDBOX_UID = 10001  # the image's user `sandbox`
READY_TIMEOUT = 90.0
LABEL = "org.agentic-vision"
DEFAULT_LEASE = 60.0
_LEASED = re.compile(r"-until-(\d+)$")
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def lease_seconds() -> float:
    return float(os.environ.get("AGENTIC_VISION_DOCKER_LEASE") or DEFAULT_LEASE)


# -- whether Docker can be used (for "auto" and the tests) ------------------------------------------------

_problems: dict[tuple, tuple[float, str | None]] = {}
PROBLEM_TTL = 10.0


def docker_problem(image: str | None = None, docker_host: str | None = None) -> str | None:
    """Why the Docker sandbox cannot start (one line), or None; cached for a few seconds."""
    key = (image or image_name(), docker_host, os.environ.get("DOCKER_HOST"), os.environ.get("DOCKER_CONTEXT"))
    now = time.monotonic()
    cached = _problems.get(key)
    if cached and now - cached[0] < PROBLEM_TTL:
        return cached[1]
    try:
        engine = connect(docker_host)
        try:
            inspect_image(engine, key[0])
        finally:
            engine.client.close()
        problem = None
    except SandboxUnavailable as exc:
        problem = str(exc)
    _problems[key] = (now, problem)
    return problem


def docker_ready(docker_host: str | None = None) -> bool:
    return docker_problem(docker_host=docker_host) is None


# -- the executor ---------------------------------------------------------------------------------------


class DockerWorker(Worker):
    """A Worker over a container's attach socket; ``container`` is the container's id."""

    attached: object = None  # what the SDK's attach returned; holds its HTTP response

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
        docker_host: str | None = None,
        lease: float | None = None,
        entry: Sequence[str] = (),
    ) -> None:
        """``entry``: arguments for the image's Python in place of the broker script
        (the test suite runs hostile runtimes this way)."""
        self.entry = tuple(entry)
        self.image = image or image_name()
        self.limits = limits or Limits()
        self.pool_size = pool_size
        self.cpus = cpus if cpus is not None else float(os.environ.get("AGENTIC_VISION_DOCKER_CPUS", "1"))
        self.lease = lease if lease is not None else lease_seconds()
        if self.lease <= 0:
            raise SandboxUnavailable("the Docker lease must be a positive number of seconds")
        self.engine: Engine = connect(docker_host)  # raises the one-line start-up errors
        self.api = self.engine.api
        self.image_id = inspect_image(self.engine, self.image)["Id"]
        self.owner = uuid.uuid4().hex
        self._clock_offset = self._engine_time() - time.time()
        self._live: dict[str, DockerWorker | None] = {}  # every container created and not yet removed
        self._lock = threading.Lock()
        self._started = False  # whether shutdown has anything to look for
        self._stop = threading.Event()
        self.pool = WorkerPool(self.spawn, pool_size, "docker-pool")
        self.sweep()
        threading.Thread(target=self._renew_forever, name="docker-lease", daemon=True).start()
        atexit.register(self.shutdown)

    @property
    def cache_key(self) -> str:
        """The image id: changes whenever what is installed in the sandbox may have changed."""
        return self.image_id

    @property
    def enforcement(self) -> dict:
        mib = lambda n: f"{n // 2**20} MiB"  # noqa: E731
        return {
            "memory": f"cgroup (Memory {mib(self.limits.memory_bytes)}, no swap)",
            "processes": f"cgroup (PidsLimit {self.limits.max_processes})",
            "file size": "rlimit (RLIMIT_FSIZE)",
            "open files": "rlimit (RLIMIT_NOFILE)",
            "working directory": f"tmpfs of {mib(self.limits.workdir_bytes)}",
            "cpu": f"cgroup (NanoCpus for {self.cpus:g} CPUs)",
            "network": "none",
        }

    # -- the container ------------------------------------------------------------------

    def security_opt(self) -> list[str]:
        # The API takes the seccomp profile itself (the CLI read it from a file).
        return ["no-new-privileges", f"seccomp={seccomp.docker_profile()}"]

    def container_config(self, name: str) -> dict:
        """create_container keywords: the same hardening the `docker run` flags used to give."""
        lim = self.limits
        tmpfs = f"rw,uid={SANDBOX_UID},gid={SANDBOX_UID}"  # Docker adds noexec,nosuid,nodev
        # RLIMIT_NPROC counts every process of uid 10001 on the host, across all
        # containers: the pids cgroup is the per-session limit.  RLIMIT_DATA is
        # not needed either: the memory cgroup holds.
        rlimits = {k: v for k, v in lim.rlimits(with_cgroup_memory=True).items() if k != "RLIMIT_NPROC"}
        host_config = self.api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={
                "/work": f"{tmpfs},mode=0755,size={lim.workdir_bytes}",
                "/tmp": f"{tmpfs},mode=1777,size={lim.tmp_bytes}",
            },
            cap_drop=["ALL"],
            security_opt=self.security_opt(),
            mem_limit=lim.memory_bytes,
            memswap_limit=lim.memory_bytes,
            pids_limit=lim.max_processes,
            nano_cpus=int(self.cpus * 1e9),
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=lim.open_files, hard=lim.open_files),
                docker.types.Ulimit(name="fsize", soft=lim.file_size_bytes, hard=lim.file_size_bytes),
                docker.types.Ulimit(name="core", soft=0, hard=0),
            ],
            # Private IPC (not "none"): a small /dev/shm, so multiprocessing locks work as in the local sandbox.
            ipc_mode="private",
            shm_size=64 * 2**20,
            cgroupns="private",
            # No init: the sandbox's broker is pid 1 and reaps orphans itself;
            # docker-init would hold the host channel where model code can
            # reach it (/proc/1/fd/1).
            init=False,
            # The protocol (images included) must not also be written to a log file.
            log_config=docker.types.LogConfig(type="none"),
            # Not auto-removed: its exit status (OOM kill or not) is read before
            # it is removed, always explicitly (kill, shutdown, lease sweep).
            auto_remove=False,
        )
        labels = {
            f"{LABEL}.session": "1",
            f"{LABEL}.owner": self.owner,
            f"{LABEL}.lease": f"{self.lease:g}",
            # For people looking at `docker ps`; nothing relies on them.
            f"{LABEL}.owner-host": socket.gethostname(),
            f"{LABEL}.owner-pid": str(os.getpid()),
        }
        return dict(
            image=self.image_id,
            name=name,
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            hostname="sandbox",
            environment={"AGENTIC_VISION_RLIMITS": json.dumps(rlimits)},
            labels=labels,
            # stdin stays open while the host is attached, and closes when it
            # detaches (StdinOnce): a runtime whose owner died sees EOF.
            stdin_open=True,
            tty=False,  # so the attach stream is multiplexed: stdout and stderr apart
            network_disabled=True,
            use_config_proxy=False,  # no proxy settings of the host's docker config inside
            host_config=host_config,
            command=[INSIDE_PYTHON, "-u", *self.entry] if self.entry else None,
        )

    def spawn(self) -> DockerWorker:
        """A new container with a ready runtime (a cold start)."""
        key = uuid.uuid4().hex[:10]
        try:
            cid = self.api.create_container(**self.container_config(self._lease_name(key)))["Id"]
        except docker.errors.APIError as exc:
            raise SandboxUnavailable(f"the engine at {self.engine.address} cannot create a sandbox container: "
                                     f"{exc.explanation or exc}") from None
        except Exception as exc:
            raise explain(exc, self.engine.address) from None
        with self._lock:
            self._live[cid] = None
            self._started = True
        try:
            attached = self.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            # The SDK hands back the raw socket's file object over plain
            # connections, the TLS socket itself over TLS and a paramiko
            # channel over ssh://; those two get a plain socket in front.
            sock = attached._sock if isinstance(attached, socket.SocketIO) else attached
            if isinstance(sock, ssl.SSLSocket):
                sock = as_socket(sock)
            elif not isinstance(sock, socket.socket):
                sock = as_socket(sock, sock.shutdown_write)
            sock.settimeout(None)  # the client's request timeout must not end an idle session
            self.api.start(cid)
        except Exception as exc:
            self._remove([cid])
            if isinstance(exc, docker.errors.APIError):
                raise SandboxUnavailable(f"the sandbox container did not start: {exc.explanation or exc}") from None
            raise explain(exc, self.engine.address) from None

        def remove() -> None:  # Worker.kill has closed the socket; now the container
            self._remove([cid])

        channel = SocketChannel(sock, exit_note=lambda: self._exit_note(cid))
        worker = DockerWorker(channel=channel, on_kill=remove, describe="Docker sandbox")
        worker.container = cid
        worker.attached = attached  # keeps the SDK's response (and a TLS socket) from being collected
        with self._lock:
            if cid in self._live:
                self._live[cid] = worker
        try:
            worker.wait_ready(READY_TIMEOUT)
        except SandboxUnavailable:
            worker.kill()
            raise
        return worker

    def _exit_note(self, cid: str) -> str:
        """How the runtime ended, from the engine (the socket only says it closed)."""
        try:
            code = self.api.wait(cid, timeout=3)["StatusCode"]
            oom = self.api.inspect_container(cid)["State"].get("OOMKilled")
        except Exception:
            return "channel closed"
        if oom:
            return "killed by the out-of-memory killer"
        if code > 128 and code - 128 in signal.valid_signals():
            return f"killed by signal {signal.Signals(code - 128).name}"
        return f"exited with status {code}"

    def _remove(self, cids) -> None:
        """Kills and removes the containers (gone when this returns); missing ones are fine."""
        for cid in cids:
            with self._lock:
                self._live.pop(cid, None)
            try:
                self.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass  # gone already
            except Exception:
                # 409: its removal is already under way; anything else: the engine
                # is away, and a later sweep removes what is left once the lease ends.
                pass

    # -- leases -------------------------------------------------------------------------

    def _engine_time(self) -> float:
        """The engine's clock (SystemTime of /info): deadlines are in it, whoever's clock is off."""
        stamp = self.api.info()["SystemTime"]  # RFC 3339 with nanoseconds, e.g. 2026-12-01T09:55:12.123456789Z
        m = _RFC3339.match(stamp)
        if m is None:
            raise SandboxUnavailable(f"the Docker engine at {self.engine.address} reports an unreadable time {stamp!r}")
        zone = "+00:00" if m[3] == "Z" else m[3]
        return datetime.fromisoformat(m[1] + zone).timestamp() + float(m[2] or 0)

    def _lease_name(self, key: str) -> str:
        deadline = int(time.time() + self._clock_offset + self.lease) + 1
        return f"agentic-vision-{self.owner[:8]}-{key}-until-{deadline}"

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.lease / 4):
            try:
                self.renew()
                self.sweep()
            except Exception:
                pass  # the engine is away for now: try again next round

    def renew(self) -> None:
        """Moves every live container's deadline a full lease ahead."""
        with self._lock:
            live = list(self._live)
        for cid in live:
            try:
                self.api.rename(cid, self._lease_name(uuid.uuid4().hex[:10]))
            except docker.errors.NotFound:
                with self._lock:
                    self._live.pop(cid, None)
            except docker.errors.APIError:
                pass  # e.g. being removed right now

    def sweep(self) -> list[str]:
        """Removes other owners' session containers whose lease ran out; returns their ids."""
        try:
            found = self.api.containers(all=True, filters={"label": f"{LABEL}.session=1"})
            now = self._engine_time()
        except Exception as exc:
            raise explain(exc, self.engine.address) from None
        expired = []
        for c in found:
            labels = c.get("Labels") or {}
            match = _LEASED.search(((c.get("Names") or [""])[0]))
            if labels.get(f"{LABEL}.owner") == self.owner or f"{LABEL}.lease" not in labels or not match:
                continue  # ours (renewed by us), or not a leased container
            if int(match.group(1)) < now:
                expired.append(c["Id"])
        self._remove(expired)
        return expired

    # -- the end ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Removes every container this executor started, in use or pooled (also at exit)."""
        self._stop.set()
        self.pool.close()  # its workers are among the live ones, removed below
        with self._lock:
            live, self._live = dict(self._live), {}
            if not self._started:
                return  # nothing to clean up: no engine call at exit
            self._started = False
        for worker in live.values():
            if worker is not None:
                worker.channel.kill()
        try:
            # By label too: a container whose start was cut short has no Worker.
            found = [c["Id"] for c in self.api.containers(all=True, filters={"label": f"{LABEL}.owner={self.owner}"})]
        except Exception:
            found = []
        self._remove(set(found) | set(live))
