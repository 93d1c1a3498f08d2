"""Benchmark runs on a real two-node Ray cluster, inside a private network namespace.

Run by tests/test_bench_ray.py as ``unshare -n python tests/ray_scenarios.py OUT``:
in the new namespace only a loopback interface exists, so Ray, the scripted
Gemini server and the bench driver listen on and talk to 127.0.0.1 only, and
nothing can leave the machine.  Writes ``OUT/summary.json`` for the test to
judge; every run's own files stay under OUT.

Scenarios (each a real `agentic-vision bench` process):
  local      the thread pool, the baseline accuracies
  ray        the same suite on the cluster
  kill       a worker process killed with -9 mid-episode: Ray retries it
  driver     the driver killed with -9 part-way, then --resume
  resources  --ray-resource / --ray-cpus: how many episodes run at once; a resource or CPU
             count no node has
  retries    every attempt of one episode killed: Ray's retries used up
  interrupt  Ctrl-C (SIGINT) to `agentic-vision bench --ray` part-way
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from agentic_vision.testing.gemini_server import ScriptedGemini  # noqa: E402
from agentic_vision.testing.ray_cluster import CLUSTER_ENV, LoopbackCluster  # noqa: E402
from test_bench_run import MODEL, make_suite, router  # noqa: E402

MODES = "direct,hosted,local"


def end_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def bench(suite: Path, out: Path, server, *extra: str, modes: str = MODES, quiet: bool = True,
          entry: tuple = ("agentic_vision.bench",)) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")}
    env.update(GOOGLE_GEMINI_BASE_URL=server.url, GEMINI_API_KEY="test",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
               **CLUSTER_ENV)
    command = [sys.executable, "-m", *entry, "--suite", str(suite), "--modes", modes,
               "--model", MODEL, "--sandbox", "local", "--out", str(out), *(["--quiet"] if quiet else []), *extra]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_group(proc)
        stdout, stderr = proc.communicate()
        return {"rc": "timeout", "stdout": stdout.decode()[-3000:], "stderr": stderr.decode()[-3000:]}
    finally:
        end_group(proc)
    return {"rc": proc.returncode, "stdout": stdout.decode()[-3000:], "stderr": stderr.decode()[-3000:]}


def records(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class Gate:
    """Holds the first local-mode request of one task until the test has done its damage."""

    def __init__(self, question: str) -> None:
        self.question, self.arrived, self.release, self.held = question, threading.Event(), threading.Event(), False
        self.lock = threading.Lock()

    def __call__(self, request):
        if self.question in request.first_user_text() and request.body.get("tools") and not any(
                "codeExecution" in t for t in request.body.get("tools") or []):
            with self.lock:
                first, self.held = not self.held, True
            if first:
                self.arrived.set()
                self.release.wait(60)
        return router(request)


class Holder:
    """Holds every first local-mode request of one task until released; each arrival is queued."""

    def __init__(self, question: str) -> None:
        self.question, self.arrivals, self.release, self.count = question, queue.Queue(), threading.Event(), 0

    def __call__(self, request):
        if self.question in request.first_user_text() and request.model_turns() == 0 and request.body.get("tools") \
                and not any("codeExecution" in t for t in request.body.get("tools") or []):
            self.count += 1
            self.arrivals.put(self.count)
            self.release.wait(120)
        return router(request)


def play_remote_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::play_remote"):
                found.append(int(entry.name))
    return found


def main() -> None:
    out = Path(sys.argv[1])
    summary: dict = {}
    try:
        with LoopbackCluster(nodes=2, cpus=1, logs=out, resources={"slot": 1}) as cluster:
            suite = make_suite(out)
            summary["nodes"] = cluster.node_ids
            scenarios(suite, out, cluster.address, summary)
    finally:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))


def scenarios(suite: Path, out: Path, address: str, summary: dict) -> None:
    with ScriptedGemini(router=router) as server:
        summary["local"] = finish(bench(suite, out / "local", server, "--concurrency", "2"))
        summary["ray"] = finish(bench(suite, out / "ray", server, "--ray", address, "--concurrency", "2"))

    gate = Gate("How many coins")
    with ScriptedGemini(router=gate) as server:
        proc = bench(suite, out / "kill", server, "--ray", address, "--concurrency", "2")
        killed = []
        if gate.arrived.wait(120):
            killed = play_remote_pids()
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        gate.release.set()
        summary["kill"] = finish(proc)
        summary["kill"]["killed"] = killed
        summary["kill"]["coins_local_requests"] = sum(
            1 for r in server.requests if "How many coins" in r.first_user_text() and r.model_turns() == 0
            and r.body.get("tools") and not any("codeExecution" in t for t in r.body["tools"]))

    def slow(request):
        time.sleep(0.3)  # so the kill lands part-way
        return router(request)

    with ScriptedGemini(router=slow) as server:
        proc = bench(suite, out / "driver", server, "--ray", address, "--concurrency", "2")
        deadline = time.monotonic() + 180
        while len(records(out / "driver")) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        summary["driver"] = {"first_rc": finish(proc)["rc"], "before": len(records(out / "driver"))}
        summary["driver"]["resume"] = finish(bench(suite, out / "driver", server, "--ray", address, "--resume"))
        summary["driver"]["requests_total"] = len(server.requests)

    with ScriptedGemini(router=router) as server:
        # 2 CPUs / 0.5 per episode would be 4 at once; one "slot" per node makes it 2.
        summary["resources"] = finish(bench(suite, out / "resources", server, "--ray", address, "--ray-resource", "slot",
                                            "--ray-cpus", "0.5", modes="direct", quiet=False))
        summary["no_resource"] = finish(bench(suite, out / "no-resource", server, "--ray", address, "--ray-resource",
                                              "gpu", "--limit", "1", modes="direct"), timeout=120)
        summary["big_cpus"] = finish(bench(suite, out / "big-cpus", server, "--ray", address, "--ray-cpus", "4",
                                           "--limit", "1", modes="direct"), timeout=120)

    holder = Holder("How many coins")
    with ScriptedGemini(router=holder) as server:
        proc = bench(suite, out / "retries", server, "--ray", address, "--limit", "1", modes="local")
        kills = []
        for _ in range(3):  # the first attempt and Ray's two retries
            try:
                holder.arrivals.get(timeout=120)
            except queue.Empty:
                break
            pids = play_remote_pids()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            kills.append(len(pids))
        holder.release.set()
        summary["retries"] = dict(finish(proc), kills=kills, attempts=holder.count)

    with ScriptedGemini(router=slow) as server:
        proc = bench(suite, out / "interrupt", server, "--ray", address, "--concurrency", "2",
                     entry=("agentic_vision", "bench"))
        deadline = time.monotonic() + 180
        while len(records(out / "interrupt")) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        summary["interrupt"] = finish(proc, timeout=120)
        time.sleep(2)  # cancelled workers end
        summary["interrupt"].update(recorded=len(records(out / "interrupt")), left_running=len(play_remote_pids()))


if __name__ == "__main__":
    main()
