"""A benchmark run killed with kill -9 part-way loses no finished result, and --resume
finishes it without running (or writing) any pair twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentic_vision.testing.gemini_server import ScriptedGemini
from test_bench_run import MODEL, TASKS, make_suite, router

ROOT = Path(__file__).resolve().parent.parent
MODES = ["direct", "hosted", "local"]


def slow_router(request):
    time.sleep(0.25)  # a model that takes a moment, so the kill lands mid-run
    return router(request)


def bench(suite, out, server, *extra) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")}
    env.update(GOOGLE_GEMINI_BASE_URL=server.url, GEMINI_API_KEY="test",  # the network guard's folder stays first
               PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p))
    command = [sys.executable, "-m", "agentic_vision.bench", "--suite", str(suite), "--modes", ",".join(MODES),
               "--model", MODEL, "--sandbox", "local", "--out", str(out), "--concurrency", "1", "--quiet",
               "--no-traces", *extra]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True)


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the bench process, then anything left in the session it started (its sandboxes)."""
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def test_kill_minus_nine_then_resume(tmp_path):
    suite = make_suite(tmp_path)
    out = tmp_path / "out"
    results = out / "results.jsonl"
    with ScriptedGemini(router=slow_router) as server:
        proc = bench(suite, out, server)
        try:
            deadline = time.monotonic() + 90
            while len(complete_lines(results)) < 4:
                assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "no results written in time"
                time.sleep(0.02)
        finally:
            kill_group(proc)
        assert proc.returncode == -signal.SIGKILL
        before = complete_lines(results)
        total = len(TASKS) * len(MODES)
        assert 4 <= len(before) < total, "the kill should land part-way"
        done_before = [(json.loads(line)["task_id"], json.loads(line)["mode"]) for line in before]
        # A kill can also land in the middle of a write: a torn last line must be survived.
        with results.open("ab") as f:
            f.write(b'{"v":1,"task_id":"word","mode":"loc')
        requests_before = len(server.requests)

        proc = bench(suite, out, server, "--resume")
        try:
            stdout, stderr = proc.communicate(timeout=180)
        finally:
            kill_group(proc)
        assert proc.returncode == 0, stderr.decode()[-2000:]

        after = complete_lines(results)
        assert results.read_bytes().endswith(b"\n")  # the torn tail was cut, not appended to
        assert after[: len(before)] == before  # what was finished stayed, byte for byte
        keys = [(json.loads(line)["task_id"], json.loads(line)["mode"]) for line in after]
        assert len(keys) == total and len(set(keys)) == total  # nothing lost, nothing twice
        # The resumed run asked the model only about the pairs that were not finished.
        resumed = server.requests[requests_before:]
        asked = {(next(t["id"] for t in TASKS if t["question"] in r.first_user_text()),
                  "hosted" if any("codeExecution" in t for t in r.body.get("tools") or [])
                  else "local" if r.body.get("tools") else "direct") for r in resumed}
        assert not asked & set(done_before)
        assert b"report:" in stdout and (out / "report.md").is_file()

        # Resuming a finished run runs nothing and writes nothing.
        snapshot, served = results.read_bytes(), len(server.requests)
        proc = bench(suite, out, server, "--resume")
        try:
            proc.communicate(timeout=120)
        finally:
            kill_group(proc)
        assert proc.returncode == 0
        assert results.read_bytes() == snapshot and len(server.requests) == served
