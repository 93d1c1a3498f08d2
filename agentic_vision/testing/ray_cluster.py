"""A real Ray cluster on loopback, for tests and benchmarks: ``ray start`` nodes as child processes.

Only inside a private network namespace (``unshare -n``, then loopback up):
there Ray can listen on and talk to 127.0.0.1 only, and nothing it does
leaves the machine.  ``LoopbackCluster`` refuses to start anywhere else.
Each node is its own process group and is ended by it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The ray command of this interpreter: its script beside it, or (a venv that sees Ray through a .pth
# file, without the script) the same entry point run by the interpreter itself.
_SCRIPT = Path(sys.executable).with_name("ray")
RAY = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ray.scripts.scripts"]
# A cluster of its own on loopback in a private network namespace: no usage reports, and no
# token authentication (Ray turns it on when it finds ~/.ray/auth_token, which a driver of this
# test cluster would then lack).
CLUSTER_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def private_network() -> bool:
    """True when this process's network namespace has no interface but loopback.

    Read from /proc/self/net/dev, which follows the namespace of the reader
    (/sys/class/net shows the namespace that mounted /sys).
    """
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return {line.split(":", 1)[0].strip() for line in lines} <= {"lo"}


def loopback_up() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)


def in_private_network(argv: list[str]) -> list[str]:
    """``argv`` wrapped to run in a new network namespace with loopback up (needs root or user namespaces)."""
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


class LoopbackCluster:
    """``with LoopbackCluster(nodes=2, cpus=1) as cluster:`` ... ``cluster.address``, ``cluster.node_ids``."""

    def __init__(self, nodes: int = 1, cpus: float = 1, port: int = 6390, logs: Path | None = None,
                 resources: dict | None = None) -> None:
        self.nodes, self.cpus, self.port, self.resources = nodes, cpus, port, resources
        self.address = f"127.0.0.1:{port}"
        self.logs = Path(logs or tempfile.mkdtemp(prefix="ray-logs-"))
        self.procs: list[subprocess.Popen] = []
        self.node_ids: list[str] = []

    def __enter__(self) -> "LoopbackCluster":
        if not private_network():
            raise RuntimeError("LoopbackCluster runs only in a private network namespace (unshare -n)")
        loopback_up()
        temp = tempfile.mkdtemp(prefix="avray-", dir="/tmp")  # Ray's socket paths must stay short
        try:
            self._start(["--head", "--port", str(self.port), "--include-dashboard", "false", "--temp-dir", temp])
            self.wait_for(1)
            for _ in range(self.nodes - 1):
                self._start(["--address", self.address])
            self.node_ids = self.wait_for(self.nodes)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, args: list[str]) -> None:
        extra = ["--resources", json.dumps(self.resources)] if self.resources else []
        log = (self.logs / f"node-{len(self.procs)}.log").open("wb")
        env = {**os.environ, **CLUSTER_ENV}
        self.procs.append(subprocess.Popen(
            [*RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
             "--disable-usage-stats", *extra, *args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))

    def wait_for(self, n: int, timeout: float = 120) -> list[str]:
        """Node ids once ``n`` nodes are alive (asked from a throwaway driver process)."""
        probe = (f"import ray, json; ray.init(address={self.address!r}, log_to_driver=False, logging_level='ERROR');"
                 " print(json.dumps([x['NodeID'] for x in ray.nodes() if x['Alive']]))")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with {proc.returncode}: see {self.logs}")
            done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                  env={**os.environ, **CLUSTER_ENV})
            if done.returncode == 0 and done.stdout.strip():
                nodes = json.loads(done.stdout.strip().splitlines()[-1])
                if len(nodes) >= n:
                    return nodes
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout:.0f} s: see {self.logs}")

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        self.procs = []
