"""`serve` logs one line per request: model, steps, sandbox time, status, duration; as JSON with
--log-format json.  A real gateway process, a scripted upstream, the real sandbox."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from gateway_helpers import CROP, MODEL, image_bytes, raw_request

GENERATE = f"/v1beta/models/{MODEL}:generateContent"


def body() -> dict:
    data = base64.b64encode(image_bytes()).decode()
    return {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": data}},
                                                    {"text": "Zoom in."}]}],
            "tools": [{"codeExecution": {}}]}


def serve_and_ask(*extra) -> tuple[list[str], str]:
    """Starts `serve` with ``extra``, makes three requests, stops it; its stderr lines and port."""
    script = [reply.call("run_python", {"code": CROP}), reply.text("A cup of coffee.")]
    with ScriptedGemini(script) as upstream:
        env = {**os.environ, "GEMINI_API_KEY": "upstream-key", "GOOGLE_GEMINI_BASE_URL": upstream.url}
        server = subprocess.Popen([sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local", "--port", "0",
                                   *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = server.stderr.readline()
            port = re.search(r"gateway on http://127\.0\.0\.1:(\d+) ", first).group(1)
            url = f"http://127.0.0.1:{port}"
            status, _, payload = raw_request(url, "POST", GENERATE + "?key=secret-in-query", body())
            assert status == 200, payload
            assert raw_request(url, "GET", "/v1beta/nothing-here")[0] == 404
            assert raw_request(url, "POST", GENERATE, b"{not json")[0] == 400
        finally:
            server.terminate()
            _, rest = server.communicate(timeout=30)
    return [first, *rest.splitlines()], port


def test_json_log_has_one_object_per_request():
    lines, _ = serve_and_ask("--log-format", "json")
    assert "secret-in-query" not in "\n".join(lines)
    entries = [json.loads(line) for line in lines[1:] if line.startswith("{")]
    requests = [e for e in entries if "status" in e]
    assert [(e["method"], e["path"], e["status"]) for e in requests] == [
        ("POST", GENERATE, 200), ("GET", "/v1beta/nothing-here", 404), ("POST", GENERATE, 400)]
    ran = requests[0]
    assert ran["model"] == MODEL and ran["code_execution"] is True and ran["backend"] == MODEL
    assert ran["steps"] == 1 and ran["sandbox_s"] > 0 and ran["stop_reason"] == "answered"
    assert ran["duration_s"] >= ran["sandbox_s"] and ran["level"] == "INFO" and ran["time"]
    assert "code_execution" not in requests[1] and requests[2]["model"] == MODEL
    # every line of the process after the banner is JSON (uvicorn's own too)
    assert all(line.startswith("{") for line in lines[1:] if line.strip()), lines


def test_text_log_is_one_line_per_request():
    lines, _ = serve_and_ask()
    ran = [line for line in lines if f"POST {GENERATE} 200" in line]
    assert len(ran) == 1
    assert re.search(rf"POST {re.escape(GENERATE)} 200 [\d.]+s model={MODEL} backend={MODEL} steps=1 "
                     r"sandbox=[\d.]+s stop=answered$", ran[0]), ran[0]
    assert any("GET /v1beta/nothing-here 404" in line for line in lines)
    assert not any('"POST /v1beta' in line for line in lines)  # uvicorn's access log is not doubled in


def test_quiet_serve_logs_no_requests():
    lines, _ = serve_and_ask("--log-level", "warning")
    assert not any(GENERATE in line for line in lines[1:])
