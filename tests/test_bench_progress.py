"""`bench` shows life: off a terminal a progress line every few seconds; on one a progress bar."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

from agentic_vision.bench.offline import OfflineRouter
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample
from pty_support import joined, run_on_pty

TASKS = [{"id": f"coins{i}", "image": "coins.png", "question": f"How many coins are in picture {i}?",
          "answer": 24, "match": "number"} for i in range(3)]
LINE = re.compile(r"^bench: (\d)/3 done \((\d) right\), [\d.]+/min, \d+s elapsed, (~\d+s left|time left known after 5 results)$")


def router(request):
    if OfflineRouter.mode_of(request) != "local":
        raise AssertionError("only local mode is run here")
    script = [reply.call("run_python", {"code": "import time\ntime.sleep(1.5)\nprint('looked')"}),
              reply.text("There are 24 coins.")]
    return script[request.model_turns()]


def bench_argv(tmp_path, *extra):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    suite = tmp_path / "tasks.jsonl"
    suite.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return [sys.executable, "-m", "agentic_vision", "bench", "--suite", str(suite), "--modes", "local",
            "--model", "gemini-3-flash-preview", "--sandbox", "local", "--out", str(tmp_path / "out"),
            "--concurrency", "1", "--no-traces", *extra]


def env_for(server):
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")}
    return {**env, "GEMINI_API_KEY": "test", "GOOGLE_GEMINI_BASE_URL": server.url}


def test_off_a_terminal_a_progress_line_every_few_seconds(tmp_path):
    with ScriptedGemini(router=router) as server:
        result = subprocess.run(bench_argv(tmp_path, "--progress-every", "1"), env=env_for(server),
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("bench: ") and "done" in line]
    assert len(lines) >= 4, result.stderr  # about 5 s of episodes, a line a second, and the last one
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    done = [int(m.group(1)) for m in parsed]
    assert done == sorted(done) and done[-1] == 3 and parsed[-1].group(2) == "3"
    assert any(m.group(3).startswith("~") for m in parsed)  # an estimate once something finished
    assert "\r" not in result.stderr and "\x1b" not in result.stderr


def test_on_a_terminal_a_progress_bar(tmp_path):
    with ScriptedGemini(router=router) as server:
        status, chunks = run_on_pty(bench_argv(tmp_path), env=env_for(server))
    data = joined(chunks)
    assert status == 0, data
    assert b"3/3" in data and b"3 right" in data and b"/min" in data
    assert not re.search(rb"bench: \d/3 done", data)  # the bar, not the log lines
