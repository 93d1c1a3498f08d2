"""Code-execution requests past --max-concurrent wait in a bounded queue, so ordinary
parallel client code (the google-genai SDK does not retry) succeeds; past
--max-queue they get 429 with Retry-After."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from google import genai
from google.genai import types

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from gateway_helpers import MODEL, gateway, image_bytes

pytestmark = pytest.mark.timeout(240)
CONFIG = types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)])


def scripts(n: int, code: str) -> dict:
    return {f"question {i}": [reply.call("run_python", {"code": code}),
                              lambda r, i=i: reply.text(f"answer {i}: " + r.function_responses()[-1]["response"]["output"].strip())]
            for i in range(n)}


def ask_all(gw, n: int) -> list:
    """n concurrent requests from one SDK client, as ordinary parallel client code makes them."""
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=gw.url))
    image = types.Part.from_bytes(data=image_bytes(), mime_type="image/png")

    def ask(i: int):
        try:
            return client.models.generate_content(model=MODEL, contents=[image, f"question {i}"], config=CONFIG).text
        except genai.errors.APIError as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(ask, range(n)))


@pytest.mark.parametrize("n", [6, 20])
def test_concurrent_requests_from_one_client_all_succeed_through_the_queue(n):
    with ScriptedGemini(router=reply.by_question(scripts(n, "print(6 * 7)"))) as upstream, \
            gateway(upstream, max_concurrent=4, max_queue=32) as gw:
        answers = ask_all(gw, n)
    assert answers == [f"answer {i}: 42" for i in range(n)]


def test_past_max_queue_requests_get_429_with_retry_after():
    code = "import time\ntime.sleep(2)\nprint('slept')"
    with ScriptedGemini(router=reply.by_question(scripts(6, code))) as upstream, \
            gateway(upstream, max_concurrent=1, max_queue=2) as gw:
        answers = ask_all(gw, 6)
    refused = [a for a in answers if isinstance(a, genai.errors.APIError)]
    served = [a for a in answers if isinstance(a, str)]
    assert len(served) == 3 and all(a.endswith(": slept") for a in served)  # one running, two queued
    assert len(refused) == 3 and {(e.code, e.status) for e in refused} == {(429, "RESOURCE_EXHAUSTED")}
    assert all(int(e.response.headers["retry-after"]) >= 1 and "--max-queue" in e.message for e in refused)


def test_a_request_that_waits_past_queue_timeout_gets_429():
    code = "import time\ntime.sleep(4)\nprint('slept')"
    with ScriptedGemini(router=reply.by_question(scripts(2, code))) as upstream, \
            gateway(upstream, max_concurrent=1, max_queue=4, queue_timeout=1.0) as gw:
        answers = ask_all(gw, 2)
    refused = [a for a in answers if isinstance(a, genai.errors.APIError)]
    assert sum(isinstance(a, str) for a in answers) == 1 and len(refused) == 1
    assert refused[0].code == 429 and "--queue-timeout" in refused[0].message
    assert int(refused[0].response.headers["retry-after"]) >= 1


def test_a_client_that_leaves_the_queue_gives_its_place_up():
    code = "import time\ntime.sleep(3)\nprint('slept')"
    with ScriptedGemini(router=reply.by_question(scripts(3, code))) as upstream, \
            gateway(upstream, max_concurrent=1, max_queue=1) as gw:
        def send(i: int) -> http.client.HTTPConnection:
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
            body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png",
                                                             "data": base64.b64encode(image_bytes()).decode()}},
                                            {"text": f"question {i}"}]}], "tools": [{"codeExecution": {}}]}
            conn.request("POST", f"/v1beta/models/{MODEL}:generateContent", json.dumps(body),
                         {"content-type": "application/json", "x-goog-api-key": "k"})
            return conn

        running = send(0)
        time.sleep(1.5)  # question 0 runs
        queued = send(1)
        time.sleep(0.5)  # question 1 waits in the queue, then leaves
        queued.sock.shutdown(socket.SHUT_RDWR)
        queued.close()
        time.sleep(0.5)
        third = send(2)  # would be 429 (queue full) if question 1 still held its place
        first, last = running.getresponse(), third.getresponse()
        answers = [json.loads(r.read())["candidates"][0]["content"]["parts"][-1]["text"] for r in (first, last)]
        running.close()
        third.close()
    assert answers == ["answer 0: slept", "answer 2: slept"]
    assert not [r for r in upstream.requests if "question 1" in json.dumps(r.body)]  # it never ran
