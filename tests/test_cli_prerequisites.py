"""Everything a run or a server needs is checked before it spends work or listens: the sandbox
of every mode, the files it will write, locks against a second run on the same state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

SETUP_LINE = ("agentic-vision: the local sandbox's library environment is not set up: run "
              "'agentic-vision sandbox setup' (once, a few minutes) or use --sandbox docker\n")


def run(*args, env=None, timeout=300, **kwargs):
    base = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY",
                                                                 "GOOGLE_GEMINI_BASE_URL", "AGENTIC_VISION_SANDBOX")}
    return subprocess.run([sys.executable, "-m", "agentic_vision", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=timeout, **kwargs)


def one_task_suite(tmp_path):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "coins", "image": "coins.png", "question": "How many coins?",
                                "answer": 24, "match": "number"}) + "\n")
    return path


def test_bench_checks_the_local_sandbox_before_the_first_direct_episode(tmp_path):
    suite, out = one_task_suite(tmp_path), tmp_path / "out"
    home = tmp_path / "home"  # no library environment set up here
    with ScriptedGemini([reply.text("24")]) as server:
        env = {"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url, "AGENTIC_VISION_HOME": str(home)}
        args = ("bench", "--suite", str(suite), "--modes", "direct,local", "--sandbox", "local", "--out", str(out))
        first = run(*args, env=env)
        assert (first.returncode, first.stderr) == (3, SETUP_LINE)
        assert server.requests == []  # no direct episode was paid for
        assert not (out / "results.jsonl").exists()
        second = run(*args, env=env)  # the same command again: the same line, not "already holds results"
    assert (second.returncode, second.stderr) == (3, SETUP_LINE)


def test_serve_refuses_to_listen_without_a_usable_local_sandbox(tmp_path):
    result = run("serve", "--sandbox", "local", "--port", "0", env={"AGENTIC_VISION_HOME": str(tmp_path)}, timeout=60)
    assert (result.returncode, result.stderr) == (3, SETUP_LINE)
