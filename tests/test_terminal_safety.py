"""Model output never drives the user's terminal: checked on the bytes a real pty receives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
import pty_support
from conftest import sample

# OSC 52 (write the clipboard), OSC 0 (window title), a cursor-position query
# (the terminal would answer it as if typed), and the 8-bit CSI.
HOSTILE = "print('\\x1b]52;c;aGVsbG8=\\x07 \\x1b]0;pwned\\x07 \\x1b[6n \\x9b31m done')"
RAW = [b"\x1b]52;", b"\x1b]0;", b"\x1b[6n", "\x9b".encode()]
SHOWN = "^[]52;c;aGVsbG8=^G ^[]0;pwned^G ^[[6n M-^[31m done"


def run_on_pty(argv, env=None, cwd=None) -> tuple[int, bytes]:
    status, chunks = pty_support.run_on_pty(argv, env=env, cwd=cwd)
    return status, pty_support.joined(chunks)


def assert_escaped(data: bytes) -> None:
    for raw in RAW:
        assert raw not in data, (raw, data)
    assert SHOWN.encode() in data, data


def test_exec_output_on_a_terminal_is_escaped(tmp_path):
    status, data = run_on_pty([sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "local",
                               "--out", str(tmp_path), HOSTILE])
    assert status == 0, data
    assert_escaped(data)


def test_exec_output_through_a_pipe_and_json_is_exact(tmp_path):
    argv = [sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "local", "--out", str(tmp_path), HOSTILE]
    piped = subprocess.run(argv, capture_output=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    expected = "\x1b]52;c;aGVsbG8=\x07 \x1b]0;pwned\x07 \x1b[6n \x9b31m done\n"
    assert piped.stdout == expected.encode()
    as_json = subprocess.run(argv[:-1] + ["--json", HOSTILE], capture_output=True, timeout=300)
    assert json.loads(as_json.stdout)["output"] == expected


def test_ask_step_log_and_answer_on_a_terminal_are_escaped():
    script = [reply.call("run_python", {"code": HOSTILE}, thought="Zoom \x1b]0;title\x07 in."),
              reply.text("\x1b]52;c;aGVsbG8=\x07 \x1b]0;pwned\x07 \x1b[6n \x9b31m done")]
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY",)}
    with ScriptedGemini(script) as server:
        env.update(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=server.url)
        status, data = run_on_pty([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")),
                                   "How many?", "--sandbox", "local"], env=env)
    assert status == 0, data
    assert_escaped(data)
    assert data.count(SHOWN.encode()) >= 2  # the code's output in the step log, and the answer
    assert b"Zoom ^[]0;title^G in." in data
