#!/usr/bin/env python
"""The gateway's memory under N concurrent maximum-size request bodies.

    .venv/bin/python benchmarks/gateway_memory.py [--clients 8] [--max-body-mb 20] [--max-memory-mb 256]

Starts a real ``agentic-vision serve`` (local sandbox, the scripted Gemini
server as its upstream), reads its idle RSS from /proc, then sends N bodies
of just under --max-body-mb at once, for each shape below, and reports the
process's peak RSS (VmHWM) over the idle baseline of the same run, the RSS
a few seconds after, and the statuses the requests got:

* ``empty objects``: ``{"contents":[{},{},...]}``, 24 bytes of Python per 3 of JSON;
* ``short strings``: ``["ab","ab",...]``, 12 bytes per 5;
* ``image``: one base64 inlineData part in a code-execution request (not a real
  image, so it is refused after it has been parsed and decoded);
* ``text upstream``: one ASCII text part, passed to the upstream;
* ``emoji text``: one text part with a character beyond the BMP, 4 bytes a character.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

from agentic_vision.testing.gemini_server import ScriptedGemini, reply  # noqa: E402

MODEL = "gemini-3-flash-preview"
MIB = 2**20


def rss(pid: int, field: str = "VmRSS") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def bodies(size: int) -> dict[str, bytes]:
    code = [{"codeExecution": {}}]

    def text_body(text: str, tools) -> bytes:
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        if tools:
            body["tools"] = tools
        return json.dumps(body, ensure_ascii=False).encode()

    data = base64.b64encode(os.urandom((size - 400) * 3 // 4)).decode()
    image = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": data}},
                                                     {"text": "Zoom in."}]}], "tools": code}
    return {
        "empty objects": b'{"contents":[' + b",".join([b"{}"] * ((size - 20) // 3)) + b"]}",
        "short strings": b'{"contents":["' + b'","'.join([b"ab"] * ((size - 20) // 5)) + b'"]}',
        "image": json.dumps(image).encode(),
        "text upstream": text_body("a" * (size - 200), None),
        "emoji text": text_body("a" * (size - 300) + "\U0001F600", code),
    }


def post(port: int, body: bytes, statuses: Counter, key: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", f"/v1beta/models/{MODEL}:generateContent", body=body,
                     headers={"content-type": "application/json", "x-goog-api-key": key})
        response = conn.getresponse()
        response.read()
        statuses[response.status] += 1
    except OSError as exc:
        statuses[type(exc).__name__] += 1
    finally:
        conn.close()


def sample(pid: int, threads: list, into: list) -> None:
    """RSS every few milliseconds while the requests run (VmHWM is the kernel's own peak; both are kept)."""
    while any(t.is_alive() for t in threads):
        into.append(rss(pid))
        time.sleep(0.002)


def start_gateway(upstream_url: str, max_body_mb: float, max_memory_mb: float) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "GEMINI_API_KEY": "bench", "GOOGLE_GEMINI_BASE_URL": upstream_url}
    server = subprocess.Popen([sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local", "--port", "0",
                               "--log-level", "warning", "--max-body-mb", str(max_body_mb),
                               "--max-memory-mb", str(max_memory_mb)],
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = server.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+) ", line)
    if not match:
        server.kill()
        raise SystemExit(f"the gateway did not start: {line}{server.stderr.read()}")
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep its stderr drained
    return server, int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-body-mb", type=float, default=20.0)
    parser.add_argument("--max-memory-mb", type=float, default=256.0)
    args = parser.parse_args()
    size = int(args.max_body_mb * MIB) - 1024
    shapes = bodies(size)
    with ScriptedGemini(router=lambda request: reply.text("Hello.")) as upstream:
        server, port = start_gateway(upstream.url, args.max_body_mb, args.max_memory_mb)
        try:
            time.sleep(2)
            idle = rss(server.pid)
            print(f"gateway pid {server.pid}: idle RSS {idle / MIB:.0f} MiB; {args.clients} concurrent bodies of "
                  f"{size / MIB:.1f} MiB; --max-memory-mb {args.max_memory_mb:g}")
            print(f"{'shape':<15} {'peak over idle':>15} {'after':>8}  statuses")
            worst = 0
            for name, body in shapes.items():
                statuses: Counter = Counter()
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM from here
                threads = [threading.Thread(target=post, args=(port, body, statuses, "bench")) for _ in range(args.clients)]
                for t in threads:
                    t.start()
                sampled = [idle]
                sampling = threading.Thread(target=sample, args=(server.pid, threads, sampled), daemon=True)
                sampling.start()
                for t in threads:
                    t.join()
                sampling.join()
                time.sleep(2)
                peak = max(rss(server.pid, "VmHWM"), max(sampled)) - idle
                worst = max(worst, peak)
                print(f"{name:<15} {peak / MIB:>11.0f} MiB {rss(server.pid) / MIB:>6.0f} MiB  "
                      + ", ".join(f"{n}x {s}" for s, n in sorted(statuses.items(), key=str)))
            statuses = Counter()
            post(port, json.dumps({"contents": [{"parts": [{"text": "Hi"}]}]}).encode(), statuses, "bench")
            print(f"peak over idle: {worst / MIB:.0f} MiB = {worst / (args.max_memory_mb * MIB):.2f} x --max-memory-mb; "
                  f"idle {idle / MIB:.0f} MiB; a small request afterwards: {dict(statuses)}")
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
