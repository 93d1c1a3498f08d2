"""--auth-token over streamable HTTP, and where the server agrees to listen."""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess
from urllib.parse import urlsplit

import pytest
from mcp import MCPError

from mcp_support import PYTHON, http_server, server_env, sync_client, text_of

INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}).encode()


def post(url: str, headers: dict | None = None, host: str | None = None) -> tuple[int, bytes, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, body=INITIALIZE, headers={
            "Accept": "application/json, text/event-stream", "Content-Type": "application/json",
            **({"Host": host} if host else {}), **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_without_the_right_bearer_token_every_request_gets_401(tmp_path, how):
    token = secrets.token_urlsafe(32)
    args, env = (("--auth-token", token), None) if how == "option" else ((), {"AGENTIC_VISION_AUTH_TOKEN": token})
    with http_server(*args, cwd=tmp_path, env=env) as (url, proc):
        for headers in ({}, {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"},
                        {"Authorization": f"Bearer {token[:-1]}"}, {"Authorization": f"Basic {token}"},
                        {"Authorization": token}):
            status, body, response_headers = post(url, headers)
            assert status == 401, headers
            assert response_headers["www-authenticate"].startswith("Bearer")
            assert "--auth-token" in json.loads(body)["error"] and token not in body.decode()
        assert post(url, {"Authorization": f"Bearer {token}"})[0] == 200
        with pytest.raises(ExceptionGroup) as refused:  # the SDK's own client, without the token
            with sync_client(url) as client:
                client.call("run_python", {"code": "print(1)"})
        assert refused.group_contains(MCPError, match="error response")
        with sync_client(url, headers={"Authorization": f"Bearer {token}"}) as client:
            ran = client.call("run_python", {"code": "print('with the token')"})
        assert text_of(ran).startswith("OUTCOME_OK\nwith the token\n")
        assert proc.poll() is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.com"])
def test_listening_beyond_loopback_without_a_token_is_refused_before_anything_listens(tmp_path, host):
    env = {k: v for k, v in server_env().items() if k != "AGENTIC_VISION_AUTH_TOKEN"}
    started = subprocess.run([PYTHON, "-m", "agentic_vision.cli", "mcp", "--transport", "streamable-http",
                              "--host", host, "--port", "0", "--sandbox", "local"],
                             cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 2 and started.stdout == ""
    assert started.stderr == (
        f"agentic-vision: refusing to listen on {host} without --auth-token: anyone who can reach it could run "
        "code in its sandboxes and read its --allow-dir files (use --auth-token TOKEN or "
        "AGENTIC_VISION_AUTH_TOKEN, or a loopback --host)\n")


def test_bad_tokens_and_a_token_over_stdio_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([PYTHON, "-m", "agentic_vision.cli", "mcp", "--sandbox", "local", *args], cwd=tmp_path,
                              env=server_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    for token in ("short", "sixteen chars ok", "x" * 15):
        weak = run("--transport", "streamable-http", "--port", "0", "--auth-token", token)
        assert weak.returncode == 2 and weak.stderr.count("\n") == 1
        assert "--auth-token (AGENTIC_VISION_AUTH_TOKEN) must be at least 16 printable ASCII" in weak.stderr
    stdio = run("--auth-token", secrets.token_urlsafe(32))
    assert stdio.returncode == 2 and stdio.stderr == (
        "agentic-vision: --auth-token is for --transport streamable-http; a stdio server talks only to the "
        "client that started it\n")


def test_another_loopback_address_needs_no_token_and_keeps_the_dns_rebinding_check(tmp_path):
    with http_server("--host", "127.0.0.2", cwd=tmp_path) as (url, proc):
        assert urlsplit(url).hostname == "127.0.0.2"
        assert post(url)[0] == 200
        assert post(url, host="evil.example:80")[0] in (403, 421)
        with sync_client(url) as client:
            assert text_of(client.call("run_python", {"code": "print(2)"})).startswith("OUTCOME_OK\n2\n")
