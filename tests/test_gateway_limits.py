"""The gateway under bad input, load, disconnects and the auth rules: proper statuses,
Google's error shape, and it keeps serving."""

from __future__ import annotations

import base64
import http.client
import json
import re
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from google import genai
from google.genai import types

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from gateway_helpers import CROP, MODEL, gateway, image_bytes, raw_request
from session_host import descendants

pytestmark = pytest.mark.timeout(180)
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
KEY = {"x-goog-api-key": "k"}


def request_body(image: bytes | str, mime: str = "image/png", question: str = "Zoom in.") -> dict:
    data = image if isinstance(image, str) else base64.b64encode(image).decode()
    return {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": mime, "data": data}},
                                                    {"text": question}]}],
            "tools": [{"codeExecution": {}}]}


def error_of(payload: bytes) -> dict:
    error = json.loads(payload)["error"]
    assert set(error) == {"code", "message", "status"} and error["message"]
    return error


def client_for(gw, key: str = "k") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))


def test_bad_requests_get_google_errors_and_the_gateway_keeps_serving():
    truncated_png = image_bytes()[:2000]
    with ScriptedGemini([reply.call("run_python", {"code": CROP}), "Done."]) as upstream, gateway(upstream) as gw:
        cases = {
            "malformed JSON": (GENERATE, b"{not json", 400, "INVALID_ARGUMENT", "JSON"),
            "no contents": (GENERATE, {"tools": [{"codeExecution": {}}]}, 400, "INVALID_ARGUMENT", "contents"),
            "bad base64": (GENERATE, request_body("%%%not base64%%%"), 400, "INVALID_ARGUMENT", "Base64 decoding failed"),
            "not an image": (GENERATE, request_body(b"hello, I am text"), 400, "INVALID_ARGUMENT", "not an image"),
            "unsupported type": (GENERATE, request_body(b"\x00\x01", "application/x-msdownload"), 400,
                                 "INVALID_ARGUMENT", "Unsupported MIME type"),
            "truncated image": (GENERATE, request_body(truncated_png), 400, "INVALID_ARGUMENT", "not a readable image"),
            "unknown method": (f"/v1beta/models/{MODEL}:doSomethingElse", {}, 404, "NOT_FOUND", "Method not found"),
            "unknown path": ("/v1beta/nothing/here", {}, 404, "NOT_FOUND", "Method not found"),
            "40 MB of garbage": (GENERATE, os.urandom(40 * 2**20), 413, "INVALID_ARGUMENT", "exceeds the limit"),
        }
        odd = request_body(image_bytes())
        weird = {  # what: (body, words the message must hold: where and what is wrong)
            "generationConfig not an object": ({**odd, "generationConfig": "hot"},
                                               "'generationConfig': expected a JSON object"),
            "parts not a list": ({**odd, "contents": [{"role": "user", "parts": "x"}]},
                                 "contents[0].parts: contents.parts must be a list"),
            "inlineData not an object": ({**odd, "contents": [{"role": "user", "parts": [{"inlineData": "x"}, {"text": "q"}]}]},
                                         "'contents[0].parts[0].inlineData': wrong JSON type"),
            "fileData not uploaded here": ({**odd, "contents": [{"role": "user", "parts": [
                {"fileData": {"fileUri": 12}}, {"text": "q"}]}]}, "fileData: '12' is not a file uploaded to this gateway"),
            "code in a user turn": ({**odd, "contents": [{"role": "user", "parts": [
                {"executableCode": {"code": "print(1)"}}, {"text": "q"}]}]},
                "contents[0].parts[0]: a executableCode part cannot be in a user turn"),
            "the model speaks last": ({**odd, "contents": odd["contents"] + [{"role": "model", "parts": [{"text": "Hi"}]}]},
                                      "the last content must be the user's turn"),
            "a result with no code": ({**odd, "contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [
                {"codeExecutionResult": {"outcome": "OUTCOME_OK"}}]}, *odd["contents"]]},
                "contents[1].parts[0]: a codeExecutionResult must follow the executableCode"),
            "function declarations too": ({**odd, "tools": [{"codeExecution": {}}, {"functionDeclarations": [{"name": "f"}]}]},
                                          "functionDeclarations cannot be served together with codeExecution"),
            "several candidates": ({**odd, "generationConfig": {"candidateCount": 2}},
                                   "generationConfig.candidateCount must be 1"),
            "unknown setting": ({**odd, "generationConfig": {"temperatureX": 1}},
                                "'generationConfig.temperatureX': Extra inputs are not permitted"),
        }
        for what, (body, words) in weird.items():
            cases[what] = (GENERATE, body, 400, "INVALID_ARGUMENT", words)
        for what, (path, body, code, status, words) in cases.items():
            got, _, payload = raw_request(gw.url, "POST", path, body, KEY)
            error = error_of(payload)
            assert (got, error["code"], error["status"]) == (code, code, status), what
            assert words in error["message"], (what, error["message"])
        assert upstream.requests == []  # nothing bad reached the model
        status, _, payload = raw_request(gw.url, "POST", GENERATE, request_body(image_bytes()), KEY)
    assert status == 200
    parts = json.loads(payload)["candidates"][0]["content"]["parts"]
    assert parts[1]["codeExecutionResult"]["output"] == "(600, 400)\n"


def test_upstream_refusals_keep_their_status():
    with ScriptedGemini([reply.error(404, "NOT_FOUND", "models/nope is not found.")]) as upstream, gateway(upstream) as gw:
        status, _, payload = raw_request(gw.url, "POST", "/v1beta/models/nope:generateContent",
                                         request_body(image_bytes()), KEY)
    error = error_of(payload)
    assert status == 404 and error["status"] == "NOT_FOUND" and "nope" in error["message"]


def test_concurrent_requests_each_get_their_own_sandbox():
    names = ["coffee.png", "chelsea.png", "astronaut.png"]
    code = ("import os, time\nfrom PIL import Image\nopen('mine-{n}.txt', 'w').write('x')\ntime.sleep(1)\n"
            "print(Image.open('image-1.png').size, sorted(f for f in os.listdir('.') if f.startswith('mine')))")
    scripts = {f"question {n}": [reply.call("run_python", {"code": code.format(n=n)}),
                                 lambda r: reply.text(r.function_responses()[-1]["response"]["output"])]
               for n in range(len(names))}
    results: dict = {}
    with ScriptedGemini(router=reply.by_question(scripts)) as upstream, gateway(upstream, max_concurrent=3) as gw:
        def ask(n: int) -> None:
            client = client_for(gw)
            results[n] = client.models.generate_content(
                model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(names[n]), mime_type="image/png"),
                                       f"question {n}"],
                config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
        threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(names))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    sizes = {"coffee.png": (600, 400), "chelsea.png": (451, 300), "astronaut.png": (512, 512)}
    for n, name in enumerate(names):
        assert results[n].text == f"{sizes[name]} ['mine-{n}.txt']"


def _stream(gw, body: dict) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
    conn.request("POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json.dumps(body),
                 {"content-type": "application/json", **KEY})
    return conn, conn.getresponse()


def test_past_the_concurrency_limit_and_a_full_queue_requests_get_429():
    slow = [reply.call("run_python", {"code": "import time\ntime.sleep(3)\nprint('done')"}), "Slept."]
    with ScriptedGemini(slow + [reply.call("run_python", {"code": "print(1)"}), "One."]) as upstream, \
            gateway(upstream, max_concurrent=1, max_queue=0) as gw:
        conn, response = _stream(gw, request_body(image_bytes()))
        assert response.status == 200 and b"executableCode" in response.readline()  # the code is running
        status, headers, payload = raw_request(gw.url, "POST", GENERATE, request_body(image_bytes()), KEY)
        error = error_of(payload)
        assert (status, error["status"]) == (429, "RESOURCE_EXHAUSTED") and "--max-queue" in error["message"]
        assert int(headers["retry-after"]) >= 1
        rest = response.read()
        conn.close()
        assert b"Slept." in rest
        status, _, _ = raw_request(gw.url, "POST", GENERATE, request_body(image_bytes()), KEY)
        assert status == 200  # the slot is free again


def _named(name: str) -> set[int]:
    """This process's descendants whose name (/proc/PID/comm) is ``name``."""
    found = set()
    for pid in descendants(os.getpid()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                found.add(pid)
        except OSError:
            pass
    return found


def _wait(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_client_disconnect_stops_the_run_and_frees_its_sandbox():
    # The code names its own process, so the host can tell it from the sandbox's other processes and warm spares.
    code = "open('/proc/self/comm', 'w').write('av-disconnect')\nimport time\ntime.sleep(60)\nprint('finished')"
    script = [reply.call("run_python", {"code": code}), "Never."]
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        conn, response = _stream(gw, request_body(image_bytes()))
        assert b"executableCode" in response.readline()
        assert _wait(lambda: _named("av-disconnect")), "the code never started"
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        assert _wait(lambda: not _named("av-disconnect"), 10), "the process running the code outlived the client"
        # Had the loop gone on, the killed run would have gone back to the model (a second request, answered
        # "Never.") before the exchange ended; so wait for the end, then count.
        assert _wait(lambda: gw.app.state.gateway.slots.used == 0), "the exchange never ended"
        assert len(upstream.requests) == 1


def test_auth_key_is_required_and_not_forwarded(tmp_path):
    path = tmp_path / "cup.png"
    path.write_bytes(image_bytes())
    with ScriptedGemini([reply.call("run_python", {"code": CROP}), "Done."]) as upstream, \
            gateway(upstream, auth_key="gateway-secret", upstream_key="upstream-key") as gw:
        status, _, payload = raw_request(gw.url, "POST", GENERATE, request_body(image_bytes()))
        assert (status, error_of(payload)["status"]) == (401, "UNAUTHENTICATED")
        status, _, payload = raw_request(gw.url, "POST", GENERATE, request_body(image_bytes()), {"x-goog-api-key": "wrong"})
        assert (status, error_of(payload)["status"]) == (403, "PERMISSION_DENIED")
        status, _, _ = raw_request(gw.url, "GET", "/v1beta/files?key=wrong")
        assert status == 403
        status, _, _ = raw_request(gw.url, "GET", "/v1beta/files?key=gateway-secret")
        assert status == 200
        client = client_for(gw, "gateway-secret")
        uploaded = client.files.upload(file=path)  # the upload URL itself is the credential
        response = client.models.generate_content(
            model=MODEL, contents=[uploaded, "Zoom in."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
        status, _, _ = raw_request(gw.url, "POST", "/upload/v1beta/files?upload_id=guessed", b"x",
                                   {"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"})
    assert response.text == "Done." and status == 404
    assert {r.api_key for r in upstream.requests} == {"upstream-key"}


def test_without_a_key_of_its_own_an_auth_gateway_says_so():
    with ScriptedGemini([]) as upstream, gateway(upstream, auth_key="s") as gw:
        status, _, payload = raw_request(gw.url, "POST", GENERATE, request_body(image_bytes()), {"x-goog-api-key": "s"})
    error = error_of(payload)
    assert status == 503 and "GEMINI_API_KEY" in error["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_refuses_other_addresses_without_an_auth_key_and_requires_it_with_one():
    command = [sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local", "--port", str(_free_port())]
    refused = subprocess.run(command + ["--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--auth-key" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    port = _free_port()
    command[-1] = str(port)
    server = subprocess.Popen(command + ["--host", "0.0.0.0", "--auth-key", "k3y", "--log-level", "warning"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "GEMINI_API_KEY": ""})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, payload = raw_request(f"http://127.0.0.1:{port}", "GET", "/v1beta/files")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read() if server.poll() is not None else "no start"
                time.sleep(0.2)
        assert status == 401
        status, _, payload = raw_request(f"http://127.0.0.1:{port}", "GET", "/v1beta/files", headers={"x-goog-api-key": "k3y"})
        assert status == 200 and json.loads(payload) == {"files": []}
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_on_port_0_prints_the_port_it_took_and_a_taken_port_is_one_line():
    command = [sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local", "--log-level", "warning"]
    server = subprocess.Popen(command + ["--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "GEMINI_API_KEY": "k"})
    try:
        line = server.stderr.readline()
        port = int(re.search(r"gateway on http://127\.0\.0\.1:(\d+) ", line).group(1))
        assert port != 0
        status, _, payload = raw_request(f"http://127.0.0.1:{port}", "GET", "/v1beta/files", headers=KEY)
        assert status == 200 and json.loads(payload) == {"files": []}
        taken = subprocess.run(command + ["--port", str(port)], capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2, taken.stderr
        assert taken.stderr.count("\n") == 1 and "Traceback" not in taken.stderr
        assert f"cannot listen on 127.0.0.1 port {port}" in taken.stderr and "--port" in taken.stderr
        # The one that holds the port still serves.
        assert raw_request(f"http://127.0.0.1:{port}", "GET", "/v1beta/files", headers=KEY)[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
