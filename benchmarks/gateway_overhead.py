#!/usr/bin/env python
"""What the gateway itself costs, per request and in requests per second.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests N] [--code-requests N]
                                                    [--clients 1,4,8] [--seconds S] [--json]

The upstream is the scripted Gemini server, which answers at once, so every
figure is the cost of the path, not of a model.  In one run, with the same
google-genai client code:

* pass-through (a request without codeExecution): the SDK calling the scripted
  upstream directly, against the SDK calling it through the gateway;
* code execution (one real ``print`` in the local sandbox between two model
  calls): the loop run in-process (``Agent``) against the same request through
  the gateway (parsing, the worker thread, the hosted-shape response), each
  sample with the warm sandbox pool full (a fresh sandbox per request);
* requests per second with N concurrent clients, direct and through the
  gateway, and code-execution requests per second through the gateway (a
  fresh sandbox per request, the pool refilling behind it) with its ratio to
  the gateway's pass-through requests per second.

Latencies are p50 / p95 over N sequential requests after a warm-up; every
response is checked, so a figure is never that of a failing request.  Progress
goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402
from PIL import Image  # noqa: E402

from agentic_vision.bench.stats import percentile  # noqa: E402
from agentic_vision.loop.agent import Agent  # noqa: E402
from agentic_vision.models.gemini import GeminiModel  # noqa: E402
from agentic_vision.sandboxing.executors import get_executor  # noqa: E402
from agentic_vision.servers.gateway import BackgroundGateway, GatewayConfig  # noqa: E402
from agentic_vision.testing.gemini_server import ScriptedGemini, reply  # noqa: E402

MODEL = "gemini-3-flash-preview"
CODE = "print(6 * 7)"
TOOL = types.Tool(code_execution=types.ToolCodeExecution())


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def route(request):
    """Stateless: a plain request gets text; a code request a call, then the answer."""
    if request.function_responses():
        return reply.text("The answer is " + request.function_responses()[-1]["response"]["output"].strip())
    if any(d.get("name") == "run_python" for t in (request.body or {}).get("tools") or []
           for d in t.get("functionDeclarations", [])):
        return reply.call("run_python", {"code": CODE})
    return reply.text("Hello.")


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


def client_at(url: str) -> genai.Client:
    return genai.Client(api_key="bench", http_options=types.HttpOptions(base_url=url))


def timed(call, n: int, ready=None) -> list[float]:
    """``ready()`` runs untimed before each sample (e.g. refill the warm sandbox pool)."""
    call()  # warm-up: connections, pools, imports
    samples = []
    for _ in range(n):
        if ready is not None:
            ready()
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def rate(make_call, clients: int, seconds: float) -> float:
    """Requests per second with ``clients`` threads, each with its own SDK client, for ``seconds``."""
    calls = [make_call() for _ in range(clients)]
    for call in calls:
        call()
    done = [0] * clients
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            calls[i]()
            done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - start)


def stats(samples: list[float]) -> dict:
    return {"p50_ms": round(percentile(samples, 50), 2), "p95_ms": round(percentile(samples, 95), 2)}


def measure(args, clients: list[int], upstream, gw, config: GatewayConfig) -> dict:
    png = small_png()
    contents = [types.Part.from_bytes(data=png, mime_type="image/png"), "What is six times seven?"]
    code_config = types.GenerateContentConfig(tools=[TOOL])
    direct, through = client_at(upstream.url), client_at(gw.url)
    model = GeminiModel(MODEL, client=direct)

    def plain(client):
        def call():
            assert client.models.generate_content(model=MODEL, contents="Say hello.").text == "Hello."
        return call

    def code(client):
        def call():
            response = client.models.generate_content(model=MODEL, contents=contents, config=code_config)
            assert response.candidates[0].content.parts[1].code_execution_result.output == "42\n"
        return call

    open_chats = []

    def code_in_process():
        # The gateway's sandbox settings, so both share one warm pool; timed up to the answer,
        # as the gateway answers before it closes the sandbox.
        chat = Agent(model, "local", sandbox_options={"pool_size": config.warm_sandboxes}).chat()
        open_chats.append(chat)
        result = chat.send("What is six times seven?", images=[png])
        assert result.steps[0].output == "42\n", result.steps

    def sandbox_ready():
        # Each request takes a fresh sandbox; time the path, not the pool's refill.
        while open_chats:
            open_chats.pop().close()
        time.sleep(0.2)  # the gateway closes its last sandbox after the answer
        get_executor("local", pool_size=config.warm_sandboxes).warm()

    rows: dict = {}
    say(f"pass-through: {args.requests} requests each way")
    rows["pass_through"] = {"direct": stats(timed(plain(direct), args.requests)),
                            "gateway": stats(timed(plain(through), args.requests))}
    say(f"code execution: {args.code_requests} requests each way")
    rows["code_execution"] = {"in_process_loop": stats(timed(code_in_process, args.code_requests, sandbox_ready)),
                              "gateway": stats(timed(code(through), args.code_requests, sandbox_ready))}
    rows["requests_per_s"] = {}
    for n in clients:
        say(f"requests/s with {n} client(s)")
        rows["requests_per_s"][n] = {
            "direct": round(rate(lambda: plain(client_at(upstream.url)), n, args.seconds), 1),
            "gateway": round(rate(lambda: plain(client_at(gw.url)), n, args.seconds), 1),
            "gateway_code_execution": round(rate(lambda: code(client_at(gw.url)), n, args.seconds), 2),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="sequential pass-through requests per path")
    parser.add_argument("--code-requests", type=int, default=20, help="sequential code-execution requests per path")
    parser.add_argument("--clients", default="1,4,8", help="concurrent clients for the requests/s rows")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each requests/s measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    with ScriptedGemini(router=route) as upstream:
        config = GatewayConfig(sandbox="local", upstream_url=upstream.url, upstream_key="bench",
                               max_concurrent=max(clients))
        with BackgroundGateway(config) as gw:
            rows = measure(args, clients, upstream, gw, config)
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, **rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for kind, label, base in (("pass_through", "pass-through", "direct"),
                              ("code_execution", "code execution", "in_process_loop")):
        b, g = rows[kind][base], rows[kind]["gateway"]
        print(f"{label:15} {base:>16} p50 {b['p50_ms']:8.2f} ms  p95 {b['p95_ms']:8.2f} ms")
        print(f"{'':15} {'gateway':>16} p50 {g['p50_ms']:8.2f} ms  p95 {g['p95_ms']:8.2f} ms   "
              f"overhead p50 {g['p50_ms'] - b['p50_ms']:+.2f} ms ({g['p50_ms'] / b['p50_ms']:.2f}x)  "
              f"p95 {g['p95_ms'] - b['p95_ms']:+.2f} ms")
    print("requests/s      clients   direct  gateway  ratio  gateway code-execution  code / pass-through (goal >= 0.1x)")
    for n, r in rows["requests_per_s"].items():
        print(f"{'':15} {n:7d}  {r['direct']:7.1f}  {r['gateway']:7.1f}  {r['gateway'] / r['direct']:.2f}x  "
              f"{r['gateway_code_execution']:22.2f}  {r['gateway_code_execution'] / r['gateway']:.3f}x")


if __name__ == "__main__":
    main()
