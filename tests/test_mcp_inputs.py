"""`agentic-vision mcp` (stdio, driven by the MCP SDK): what it refuses to read, ask's bounds and
its OpenAI-compatible models, and the guard that is on unless --no-guard."""

from __future__ import annotations

import os

import pytest

from agentic_vision.servers.mcp.access import FileAccess
from agentic_vision.sandboxing.session import MAX_INPUT_BYTES
from agentic_vision.testing.openai_server import ScriptedOpenAI
from agentic_vision.testing.openai_server import reply as openai_reply
from conftest import sample
from mcp_support import stdio_params, sync_client, text_of

pytestmark = pytest.mark.timeout(180)
CROP = "from PIL import Image\nprint(Image.open('coins.png').size)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp-inputs")
    (root / "a").mkdir(), (root / "b").mkdir()
    with sync_client(stdio_params("--timeout", "10", "--max-steps", "4", "--allow-dir", str(root), cwd=root)) as client:
        client.root = root
        yield client


def test_two_files_of_the_same_name_are_refused(server):
    (server.root / "a" / "x.txt").write_text("one")
    (server.root / "b" / "x.txt").write_text("two")
    result = server.call("run_python", {"code": "print(1)", "files": ["a/x.txt", "b/x.txt"], "session": "dup"})
    assert result.is_error and text_of(result) == "two of the files have the same name; rename one"
    assert text_of(server.call("list_files", {"session": "dup"})) == "the working directory is empty\n"


def test_files_over_the_total_are_refused_unread(server):
    small = server.root / "small.bin"
    small.write_bytes(b"x" * 1024)
    big = server.root / "big.bin"
    with open(big, "wb") as f:  # sparse: its size is what counts, nothing is read
        f.truncate(MAX_INPUT_BYTES - 512)
    # Each is under the cap, the two are over it: refused before the big one is read (it would take seconds).
    together = server.call("add_files", {"paths": ["small.bin", "big.bin"], "session": "total"})
    assert together.is_error and text_of(together) == f"the files exceed {MAX_INPUT_BYTES // 2**20} MiB in total"
    assert text_of(server.call("list_files", {"session": "total"})) == "the working directory is empty\n"
    big.unlink()


def test_max_steps_is_bounded_by_the_servers_limit(server):
    for steps in (0, 5, -1):
        result = server.call("ask", {"question": "?", "images": [], "max_steps": steps})
        assert result.is_error and text_of(result) == "max_steps must be between 1 and 4 (the server's limit)"


def test_the_guard_is_on_by_default(server, tmp_path):
    refused = server.call("run_python", {"code": "import ctypes\nprint('loaded')", "session": "guard"})
    assert refused.is_error and "import of 'ctypes' is not allowed in this sandbox" in text_of(refused)
    assert "loaded" not in text_of(refused)
    with sync_client(stdio_params("--no-guard", "--allow-dir", str(tmp_path), cwd=tmp_path)) as unguarded:
        allowed = unguarded.call("run_python", {"code": "import ctypes\nprint('loaded')"})
    assert text_of(allowed) == "OUTCOME_OK\nloaded\n"


def test_a_file_changed_while_it_was_checked_is_refused(tmp_path):
    """The swap a hostile client would race for, made to happen between the check and the read."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True), outside.mkdir()
    (allowed / "sub" / "f.txt").write_text("fine")
    (outside / "f.txt").write_text("secret")
    access = FileAccess([allowed])
    checked = access.check

    def check_then_swap(path: str):
        real = checked(path)
        os.rename(allowed / "sub", allowed / "moved")
        os.symlink(outside, allowed / "sub")  # the same path now leads outside
        return real

    access.check = check_then_swap
    with pytest.raises(Exception) as refused:
        access.read([str(allowed / "sub" / "f.txt")])
    assert str(refused.value) == f"{allowed / 'sub' / 'f.txt'} changed while it was being checked; try again"


@pytest.mark.parametrize("prefix, env", [("openai", "OPENAI_BASE_URL"), ("ollama", "OLLAMA_HOST")])
def test_ask_with_an_openai_compatible_model(tmp_path, prefix, env):
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    script = [openai_reply.call("run_python", {"code": CROP}),
              lambda r: openai_reply.text(f"It is {r.tool_results()[-1]['content'].splitlines()[-1]}.")]
    with ScriptedOpenAI(script) as backend:
        where = backend.url if prefix == "openai" else backend.address
        extra = {env: where, "OPENAI_API_KEY": "k"}
        with sync_client(stdio_params("--allow-dir", str(tmp_path), cwd=tmp_path, env=extra)) as client:
            result = client.call("ask", {"question": "How big?", "images": ["coins.png"],
                                         "model": f"{prefix}:qwen2.5vl", "max_steps": 3})
        first = backend.requests[0]
    assert not result.is_error, text_of(result)
    assert text_of(result).splitlines()[0] == "It is (384, 303)."
    assert first.model == "qwen2.5vl" and len(first.images()) == 1
