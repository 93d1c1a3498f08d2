#!/usr/bin/env python
"""What the benchmark harness itself costs: episodes per minute with a model that answers at once.

    .venv/bin/python benchmarks/harness_speed.py [--episodes N] [--local-episodes N]
                                                 [--concurrency 1,2,4] [--modes direct,hosted,local]
                                                 [--ray] [--json]

The scripted Gemini server (``agentic_vision.bench.offline``) answers every
request immediately: ``direct`` is one request, ``hosted`` one request with a
hosted code step in the reply, ``local`` two requests around one real code
step (a crop) in the local sandbox.  Each (mode, concurrency) cell runs N
episodes (the hand-checked builtin tasks, cycled under distinct ids) through the real harness (``run_pairs``:
thread pool, fsync'd results.jsonl, HTML traces for local) into a fresh
directory, after a warm-up episode, and reports episodes per minute and the
median time per episode.  With a real model, add the model's own latency
per call: these figures are the ceiling the harness allows.

With ``--ray`` every cell is measured a second time through ``bench --ray``'s
path (``run_pairs_on_ray``: one Ray task per episode, images through the
object store, the driver writing results) on a one-node Ray cluster with as
many CPUs as the highest concurrency, started on loopback inside a private
network namespace (the script re-runs itself under ``unshare -n``; root or
user namespaces needed), so the cost of going through Ray is a figure:
``ray/pool`` is the Ray row's episodes per minute over the thread pool's.

The Ray rows share one connection, so they show the steady state of a long
run; starting a run's workers (a process, the imports, a model client and a
sandbox pool each) costs a few seconds once, and the warm-up pays it.

Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

from agentic_vision.bench.builtin import load_builtin  # noqa: E402
from agentic_vision.bench.config import RayOptions, RunConfig, model_env  # noqa: E402
from agentic_vision.bench.modes import ModeRunner  # noqa: E402
from agentic_vision.bench.offline import offline_server  # noqa: E402
from agentic_vision.bench.on_ray import connect, run_pairs_on_ray  # noqa: E402
from agentic_vision.bench.runner import run_pairs  # noqa: E402
from agentic_vision.bench.stats import percentile  # noqa: E402
from agentic_vision.bench.tasks import Task  # noqa: E402
from agentic_vision.models.gemini import GeminiModel  # noqa: E402
from agentic_vision.testing.ray_cluster import LoopbackCluster, in_private_network, private_network  # noqa: E402
from agentic_vision.values import StopReason  # noqa: E402

MODEL = "gemini-3-flash-preview"


def measure(tasks, mode: str, concurrency: int, server_url: str, work: Path, ray_address: str | None = None) -> dict:
    out = work / f"{mode}-c{concurrency}{'-ray' if ray_address else ''}"
    started = time.perf_counter()
    if ray_address:
        os.environ["GEMINI_API_KEY"] = "harness-speed"
        config = RunConfig(MODEL, base_url=server_url, sandbox="local", suite="builtin-checked", env=model_env())
        records = run_pairs_on_ray(tasks, [mode], config, RayOptions(ray_address), out, concurrency=concurrency)
    else:
        model = GeminiModel(MODEL, api_key="harness-speed", base_url=server_url, retries=0)
        runner = ModeRunner(model, sandbox="local")
        records = run_pairs(tasks, [mode], runner, out, concurrency=concurrency, suite="builtin-checked",
                            model=MODEL, sandbox="local")
    wall = time.perf_counter() - started
    bad = [r for r in records if r["stop_reason"] != StopReason.ANSWERED]
    if bad:
        raise SystemExit(f"{mode}: {len(bad)} episodes failed, e.g. {bad[0]['error']}")
    if mode == "local" and not all(r["code_runs"] == 1 for r in records):
        raise SystemExit("local: every episode should run exactly one code step")
    latencies = [r["latency_s"] for r in records]
    return {"mode": mode, "via": "ray" if ray_address else "threads", "concurrency": concurrency,
            "episodes": len(records), "wall_s": round(wall, 3),
            "episodes_per_min": round(len(records) * 60 / wall, 1),
            "p50_episode_s": round(percentile(latencies, 50), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=60, help="episodes per direct/hosted cell (default 60)")
    parser.add_argument("--local-episodes", type=int, default=24, help="episodes per local cell (default 24)")
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--modes", default="direct,hosted,local")
    parser.add_argument("--ray", action="store_true", help="also measure each cell through a loopback Ray cluster")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if args.ray and not private_network():
        if os.environ.get("HARNESS_SPEED_UNSHARED"):
            raise SystemExit("harness_speed: could not get a private network namespace for the Ray cluster")
        # Ray listens on the node's address: give it a namespace where that is loopback only.
        os.environ["HARNESS_SPEED_UNSHARED"] = "1"
        os.execvp("unshare", in_private_network([sys.executable, *sys.argv]))
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    with tempfile.TemporaryDirectory(prefix="harness-speed-") as tmp:
        work = Path(tmp)
        checked, _ = load_builtin(work / "cache", part="checked")

        def episodes(n: int) -> list[Task]:  # copies under distinct ids; the server matches by prompt and image
            return [Task(f"{t.id}#{i // len(checked)}", t.question, t.answer, t.images, t.match, t.options,
                         t.tolerance, t.meta) for i, t in ((i, checked[i % len(checked)]) for i in range(n))]

        rows = []
        cluster = LoopbackCluster(nodes=1, cpus=max(levels), logs=work) if args.ray else None
        with offline_server(checked, stumble_rate=0.0) as server, cluster or contextlib.nullcontext():
            address = cluster.address if cluster else None
            if address:
                # One connection for every cell, as one `bench --ray` run is: its worker processes (model
                # client, warm sandbox pool) are started once, by the warm-up, as a long run's are.
                os.environ["GEMINI_API_KEY"] = "harness-speed"
                connect(RayOptions(address), RunConfig(MODEL, env=model_env()))
            print(f"warming up (scripted server at {server.url})", file=sys.stderr)
            for mode in modes:
                measure(episodes(1), mode, 1, server.url, work / "warm-up")
                if address:
                    measure(episodes(max(levels)), mode, max(levels), server.url, work / "warm-up", address)
            for mode in modes:
                tasks = episodes(args.local_episodes if mode.startswith("local") else args.episodes)
                for c in levels:
                    for via in [None, address] if address else [None]:
                        row = measure(tasks, mode, c, server.url, work, via)
                        print(f"  {mode:<7} {row['via']:<7} concurrency {c}: {row['episodes_per_min']:7.1f} "
                              "episodes/min", file=sys.stderr)
                        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"harness speed: scripted model answering at once, local sandbox, traces on; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    pool = {(r["mode"], r["concurrency"]): r["episodes_per_min"] for r in rows if r["via"] == "threads"}
    print(f"{'mode':<8} {'via':<8} {'concurrency':>11} {'episodes':>9} {'episodes/min':>13} {'ray/pool':>9} "
          f"{'p50 s/episode':>14} {'wall s':>8}")
    for r in rows:
        ratio = f"{r['episodes_per_min'] / pool[(r['mode'], r['concurrency'])]:.2f}" if r["via"] == "ray" else "–"
        print(f"{r['mode']:<8} {r['via']:<8} {r['concurrency']:>11} {r['episodes']:>9} {r['episodes_per_min']:>13.1f} "
              f"{ratio:>9} {r['p50_episode_s']:>14.3f} {r['wall_s']:>8.2f}")


if __name__ == "__main__":
    main()
