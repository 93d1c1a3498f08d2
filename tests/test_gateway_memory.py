"""Concurrent maximum-size bodies keep the real gateway process (``agentic-vision serve``)
within its documented memory ceiling: RSS from /proc over its idle RSS in the same run
stays under --max-memory-mb, the memory goes back afterwards, and it keeps serving."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from gateway_helpers import MODEL, gateway, raw_request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from gateway_memory import bodies, post, rss, start_gateway  # noqa: E402  (the benchmark's shapes and probes)

pytestmark = pytest.mark.timeout(240)
MIB = 2**20
BODY_MB, MEMORY_MB, CLIENTS = 4, 48, 6


def test_concurrent_maximum_size_bodies_stay_within_max_memory():
    shapes = bodies(BODY_MB * MIB - 1024)
    with ScriptedGemini(router=lambda request: reply.text("Hello.")) as upstream:
        server, port = start_gateway(upstream.url, BODY_MB, MEMORY_MB)
        try:
            time.sleep(1)
            idle = rss(server.pid)
            seen = {}
            for name in ("empty objects", "short strings", "image", "text upstream"):
                statuses: Counter = Counter()
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM from here
                threads = [threading.Thread(target=post, args=(port, shapes[name], statuses, "k"))
                           for _ in range(CLIENTS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                seen[name] = (rss(server.pid, "VmHWM") - idle, dict(statuses))
            time.sleep(1)
            after = rss(server.pid) - idle
            small: Counter = Counter()
            post(port, b'{"contents": [{"parts": [{"text": "Hi"}]}]}', small, "k")
        finally:
            server.terminate()
            server.wait(timeout=20)
    for name, (peak, statuses) in seen.items():
        assert peak <= MEMORY_MB * MIB, (name, peak / MIB, statuses)
        assert set(statuses) <= {200, 400, 503}, (name, statuses)  # answered, never a 500 or a dropped connection
    assert seen["empty objects"][1] == {400: CLIENTS} and seen["image"][1].get(400)
    assert seen["text upstream"][1].get(200)
    assert after <= 16 * MIB, after / MIB  # given back
    assert small == {200: 1}


@pytest.mark.parametrize("body", [b'"' + b'\\"' * (2 * MIB), b"[" * (2 * MIB), b'{"a":' * MIB,
                                  b'{"contents":[' + b"1," * (2 * MIB) + b"1]}"],
                         ids=["unterminated string of escaped quotes", "deep arrays", "deep objects", "many numbers"])
def test_absurd_json_is_refused_with_a_400_and_the_gateway_keeps_serving(body):
    # The pre-scan must be linear: a 4 MiB string of escaped quotes once took it hours.
    with gateway(None, upstream_key="x") as gw:
        status, _, payload = raw_request(gw.url, "POST", f"/v1beta/models/{MODEL}:generateContent", body,
                                         {"x-goog-api-key": "k"})
        assert status == 400 and "Invalid JSON payload" in json.loads(payload)["error"]["message"]
        assert raw_request(gw.url, "GET", "/v1beta/files", headers={"x-goog-api-key": "k"})[0] == 200
