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
"""

from __future__ import annotations

import json
import os
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
from agentic_vision.testing.ray_cluster import LoopbackCluster  # noqa: E402
from test_bench_run import MODEL, make_suite, router  # noqa: E402

MODES = "direct,hosted,local"


def end_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def bench(suite: Path, out: Path, server, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")}
    env.update(GOOGLE_GEMINI_BASE_URL=server.url, GEMINI_API_KEY="test", PYTHONPATH=str(ROOT),
               RAY_USAGE_STATS_ENABLED="0")
    command = [sys.executable, "-m", "agentic_vision.bench", "--suite", str(suite), "--modes", MODES,
               "--model", MODEL, "--sandbox", "local", "--out", str(out), "--quiet", *extra]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
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
        with LoopbackCluster(nodes=2, cpus=1, logs=out) as cluster:
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


if __name__ == "__main__":
    main()
