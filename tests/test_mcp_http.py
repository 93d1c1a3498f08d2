"""`agentic-vision mcp --transport streamable-http` on 127.0.0.1, with the SDK's HTTP client."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from urllib.parse import urlsplit

import numpy as np
import pytest

from mcp_support import (PYTHON, TOOLS, alive, decode, http_server, sandboxes_of, save_astronaut, sync_client, text_of,
                         wait_for)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp-http")
    with http_server("--timeout", "20", "--max-sessions", "6", cwd=root) as (url, proc):
        yield url, proc, root


def test_tools_a_crop_a_failure_and_a_timeout_over_http(server):
    url, _, root = server
    pixels = save_astronaut(root / "astronaut.png")
    with sync_client(url, mode="legacy") as client:
        assert set(client.tools()) == TOOLS
        result = client.call("run_python", {"code": "from PIL import Image\nImage.open('astronaut.png')"
                                                    ".crop((0, 0, 64, 32)).show()", "files": ["astronaut.png"]})
        failed = client.call("run_python", {"code": "int('seven')", "session": "errors"})
        looped = client.call("run_python", {"code": "while True:\n    pass", "timeout": 1, "session": "errors"})
        client.call("reset_session", {"session": "errors"})
    assert not result.is_error and text_of(result).startswith("OUTCOME_OK\n[image 1: 64x32]\n")
    assert np.array_equal(decode(result.content[1]), pixels[:32, :64])
    assert failed.is_error and text_of(failed).startswith("OUTCOME_FAILED\nTraceback")
    assert "ValueError: invalid literal for int()" in text_of(failed)
    assert looped.is_error and text_of(looped).startswith("OUTCOME_DEADLINE_EXCEEDED\n")


def test_stateless_calls_share_nothing_and_say_how_to_keep_state(server):
    url = server[0]
    with sync_client(url) as client:
        client.call("run_python", {"code": "x = 1"})
        unnamed = client.call("run_python", {"code": "print(x)"})
        named = client.call("run_python", {"code": "x = 41", "session": "work"})
        listing = client.call("list_files", {})
    assert unnamed.is_error and "NameError" in text_of(unnamed)
    assert "call share_session for a session token" in text_of(unnamed)  # the result says how to keep state
    assert named.is_error and text_of(named) == (
        "session 'work': a stateless request has no connection to own a named session; call share_session "
        "and pass the token it returns as session (or connect with the initialize handshake)")
    assert listing.is_error and "keeps no state between calls" in text_of(listing)


def test_a_handshake_connection_keeps_its_default_session(server):
    url = server[0]
    with sync_client(url, mode="legacy") as client:
        client.call("run_python", {"code": "y = 'mine'"})
        same = client.call("run_python", {"code": "print(y)"})
        reset = client.call("reset_session", {})
    with sync_client(url, mode="legacy") as other:
        theirs = other.call("run_python", {"code": "print(y)"})
    assert text_of(same) == "OUTCOME_OK\nmine\n"
    assert text_of(reset) == "session 'default' closed"
    assert theirs.is_error and "NameError" in text_of(theirs)


def test_bad_paths_and_bad_requests_are_refused_and_the_server_keeps_serving(server, tmp_path):
    url, proc, _ = server
    (tmp_path / "secret.txt").write_text("no")
    with sync_client(url) as client:
        refused = client.call("run_python", {"code": "print(1)", "files": [str(tmp_path / "secret.txt")]})
    assert refused.is_error and "outside the allowed directories" in text_of(refused)
    parts = urlsplit(url)

    def request(method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request(method, path, body=body, headers={"Accept": "application/json, text/event-stream",
                                                       "Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        status, data = response.status, response.read()
        conn.close()
        return status, data

    assert request("POST", parts.path, body=b"{not json")[0] == 400
    assert request("POST", parts.path, body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": 7}).encode())[0] == 400
    assert request("GET", "/elsewhere")[0] == 404
    assert request("POST", parts.path, body=b"{}", headers={"Host": "evil.example:80"})[0] in (403, 421)
    assert proc.poll() is None
    with sync_client(url) as client:
        assert text_of(client.call("run_python", {"code": "print('serving')"})).startswith("OUTCOME_OK\nserving\n")


CLIENT = """
import anyio, sys
from mcp import Client

async def main():
    async with Client(sys.argv[1]) as client:
        print("connected", flush=True)
        await client.call_tool("run_python", {"code": "while True:\\n    pass", **({"session": sys.argv[2]} if len(sys.argv) > 2 else {})})

anyio.run(main)
"""


@pytest.mark.parametrize("shared", [False, True])
def test_a_client_that_disconnects_mid_run_leaves_no_sandbox_behind(server, shared):
    """A one-off session ends with its call; a shared one outlives the client, its run does not."""
    url, proc, _ = server
    before = sandboxes_of(proc.pid)
    name = None
    if shared:
        with sync_client(url) as setup:
            name = text_of(setup.call("share_session", {})).splitlines()[0]
            setup.call("run_python", {"code": "warm = 1", "session": name})
    session = {"session": name} if name else {}
    client = subprocess.Popen([PYTHON, "-c", CLIENT, url, *([name] if name else [])], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline() == "connected\n"
        running = wait_for(lambda: sandboxes_of(proc.pid) - before, 30)
        assert running, "the run never started a sandbox"
        time.sleep(2)  # well inside the endless loop
        client.kill()  # the HTTP connection just drops
        client.wait()
        assert wait_for(lambda: not alive(running), 15), f"still running after the client left: {alive(running)}"
    finally:
        client.kill()
        client.wait()
        client.stdout.close()
    assert proc.poll() is None
    with sync_client(url) as again:
        after = again.call("run_python", {"code": "try:\n    warm\nexcept NameError:\n    print('fresh')", **session})
        if name:
            again.call("reset_session", session)
    assert text_of(after).startswith("OUTCOME_OK\nfresh\n")


def test_sessions_are_capped_and_idle_ones_closed(tmp_path):
    with http_server("--max-sessions", "1", "--idle-timeout", "2", cwd=tmp_path) as (url, proc):
        with sync_client(url, mode="legacy") as client:
            first = client.call("run_python", {"code": "z = 1", "session": "first"})
            second = client.call("run_python", {"code": "print(1)", "session": "second"})
            with sync_client(url) as stateless:
                one_off = stateless.call("run_python", {"code": "print(1)"})
            assert not first.is_error
            for refused in (second, one_off):
                assert refused.is_error and text_of(refused).startswith("all 1 sandbox sessions this server allows are open:")
            assert wait_for(lambda: not sandboxes_of(proc.pid), 15), "the idle session was not closed"
            later = client.call("run_python", {"code": "print(1)", "session": "second"})
            assert text_of(later) == "OUTCOME_OK\n1\n"
