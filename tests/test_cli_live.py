"""`ask` shows its work as it happens: a live status line on a terminal, and the code's
output as it prints (on a terminal and in a log alike), checked on the bytes received."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample
from pty_support import first_time, joined, run_on_pty

SLOW = "import time\nprint('first line', flush=True)\ntime.sleep(3)\nprint('second line')"


def ask_argv(*extra):
    return [sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")), "How many?",
            "--sandbox", "local", *extra]


def scripted_env(server):
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_API_KEY"}
    env.update(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=server.url)
    return env


def test_on_a_terminal_a_live_status_and_output_as_it_prints():
    script = [reply.call("run_python", {"code": SLOW}), reply.text("24")]
    with ScriptedGemini(script) as server:
        status, chunks = run_on_pty(ask_argv(), env=scripted_env(server))
    data = joined(chunks)
    assert status == 0, data
    first, second = first_time(chunks, b"| first line"), first_time(chunks, b"| second line")
    assert second - first > 1.5  # shown during the sleep, not with the step's result
    # the status line said what was going on, while it went on
    assert b"model thinking" in data
    assert first < first_time(chunks, b"running step 1 \xc2\xb7 2 s") < second
    assert b"OUTCOME_OK" in data and data.rstrip().endswith(b"24")


def test_in_a_log_the_output_arrives_as_it_prints_without_a_status_line(tmp_path):
    script = [reply.call("run_python", {"code": SLOW}), reply.text("24")]
    with ScriptedGemini(script) as server:
        proc = subprocess.Popen(ask_argv(), env=scripted_env(server), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        seen = {}
        log = b""
        started = time.monotonic()
        for line in proc.stderr:
            log += line
            for needle in (b"| first line", b"| second line"):
                if needle in line:
                    seen[needle] = time.monotonic() - started
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, log
    assert out == b"24\n"
    assert seen[b"| second line"] - seen[b"| first line"] > 1.5
    assert b"running step" not in log and b"\x1b" not in log  # plain lines, no live line or colour


def test_exec_prints_the_output_as_the_code_prints_it(tmp_path):
    code = "import time\nprint('first line', flush=True)\ntime.sleep(3)\nprint('second line')"
    proc = subprocess.Popen([sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "local",
                             "--out", str(tmp_path), code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen, out = {}, b""
    started = time.monotonic()
    for line in proc.stdout:
        out += line
        seen[line.strip()] = time.monotonic() - started
    proc.wait(timeout=60)
    assert proc.returncode == 0 and out == b"first line\nsecond line\n"
    assert seen[b"second line"] - seen[b"first line"] > 1.5
