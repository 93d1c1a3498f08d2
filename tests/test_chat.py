"""`agentic-vision chat` through a real pseudo-terminal: turns, commands, and `chat -c`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from agentic_vision.loop.prompt import RESUMED
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample
from run_log_support import cli, cli_env, make_home, rows, user_texts


class Terminal:
    """A command on a pty: type lines, read until a pattern appears."""

    def __init__(self, args, env) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env={**env, "TERM": "dumb"},
                                     close_fds=True)
        os.close(slave)
        self.seen = b""
        self.pos = 0  # expect() looks only at what came after its last match

    def expect(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen[self.pos:]:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"never saw {text!r}; the terminal showed:\n{self.seen.decode(errors='replace')}")
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # the child closed the pty
                    pass
        self.pos = self.seen.index(text.encode(), self.pos) + len(text.encode())
        return self.seen.decode(errors="replace")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)


@pytest.fixture
def home(tmp_path):
    return make_home(tmp_path / "home")


def chat(home, server, *args):
    return Terminal([sys.executable, "-m", "agentic_vision", "chat", *args, "--sandbox", "local"], cli_env(home, server))


def test_a_chat_keeps_state_between_turns_and_takes_commands(home, tmp_path):
    script = [
        reply.call("run_python", {"code": "from PIL import Image\nw = Image.open('coins.png').width\nprint('width', w)"}),
        reply.text("It is 384 pixels wide."),
        reply.call("run_python", {"code": "print('twice', w * 2)"}),  # state from the first turn
        reply.text("Twice is 768."),
        reply.text("Two images now."),
    ]
    with ScriptedGemini(script) as server:
        term = chat(home, server, str(sample("coins.png")))
        term.expect("> ")
        term.type("How wide is it?")
        term.expect("It is 384 pixels wide.")
        assert "width 384" in term.seen.decode()  # the step streamed as ask shows it
        term.type("What is twice that?")
        term.expect("Twice is 768.")
        assert "twice 768" in term.seen.decode()
        term.type("/image " + str(sample("rocket.jpg")))
        term.expect("goes with the next question")
        term.type("And now?")
        term.expect("Two images now.")
        trace = tmp_path / "last.html"
        term.type(f"/trace {trace}")
        term.expect("trace written")
        term.type("/nonsense")
        term.expect("unknown command")
        term.type("/exit")
        assert term.close() == 0
    assert "Two images now." in trace.read_text()
    # The third request carried the new image; the second ran in the same sandbox state.
    assert len(server.requests[4].body["contents"][-1]["parts"]) >= 2
    logged = rows(home, "SELECT question, turn_index, conversation_id FROM runs ORDER BY turn_index")
    assert [q for q, _, _ in logged] == ["How wide is it?", "What is twice that?", "And now?"]
    assert len({c for _, _, c in logged}) == 1


def test_chat_continue_replays_the_last_conversation(home):
    first = [reply.call("run_python", {"code": "secret = 41\nprint('set')"}), reply.text("Remembered 41.")]
    with ScriptedGemini(first) as server:
        term = chat(home, server, str(sample("coins.png")))
        term.expect("> ")
        term.type("Remember the number 41.")
        term.expect("Remembered 41.")
        term.expect("> ")
        os.write(term.master, b"\x04")  # Ctrl-D leaves
        assert term.close() == 0
    second = [reply.call("run_python", {"code": "try:\n    print(secret)\nexcept NameError:\n    print('no secret here')"}),
              reply.text("It is gone.")]
    with ScriptedGemini(second) as server:
        term = chat(home, server, "-c")
        term.expect("continuing conversation")
        term.expect("> ")
        term.type("Is the variable still there?")
        term.expect("It is gone.")
        assert "no secret here" in term.seen.decode()  # a fresh sandbox, as the model was told
        term.type("/exit")
        assert term.close() == 0
    request = server.requests[0]
    texts = user_texts(request)
    assert "Remember the number 41." in texts
    assert any(t.startswith("Is the variable still there?") and RESUMED in t for t in texts)
    model_texts = [p.get("text") for c in request.contents if c["role"] == "model" for p in c["parts"]]
    assert "Remembered 41." in model_texts
    assert request.images  # the conversation's image went in again
    conversations = rows(home, "SELECT DISTINCT conversation_id FROM runs")
    assert len(conversations) == 1
    assert rows(home, "SELECT turn_index FROM runs ORDER BY started_at") == [(0,), (1,)]


def test_chat_cid_and_bad_ids(home):
    with ScriptedGemini([reply.text("first")]) as server:
        assert cli(home, "ask", str(sample("coins.png")), "Q one?", "--sandbox", "local", server=server).returncode == 0
    [(run_id,)] = rows(home, "SELECT id FROM runs")
    with ScriptedGemini([reply.text("again")]) as server:
        term = chat(home, server, "--cid", run_id[:8])
        term.expect("1 earlier turn")
        term.type("Q two?")
        term.expect("again")
        term.type("/exit")
        assert term.close() == 0
    assert "Q one?" in user_texts(server.requests[0])
    bad = cli(home, "chat", "--cid", "ffff0000", "--sandbox", "local")
    assert bad.returncode == 2 and "--cid" in bad.stderr and "Traceback" not in bad.stderr
    empty = make_home(home.parent / "empty")
    none = cli(empty, "chat", "-c", "--sandbox", "local")
    assert none.returncode == 2 and "no conversation to continue" in none.stderr
