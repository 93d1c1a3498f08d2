"""Fresh sessions back to back, against the fork floor measured in the same run.

Figures to quote, not a timed test.  For the local sandbox (and Docker with
``--sandbox docker``):

* sustained fresh sessions per second: open a session with one input file,
  run ``print(1)``, close it, again and again for ``--seconds``, the warm pool
  (``--pool``) refilling behind it, as a gateway or a benchmark uses sessions;
* the floor: a pre-imported interpreter (numpy, PIL, cv2, matplotlib) forking
  a child per session that runs the same program (sandbox_overhead.py's floor);
* the ratio of the two (the goal is at least 0.1x);
* locally, the same with cold starts (``start="cold"``: a bubblewrap and a
  Python per session, as before sessions were forked from the template), for
  ``--cold-seconds``;
* memory per additional idle warm session: PSS summed over the process trees
  of 1 and of ``--idle`` idle workers (with each forked session's monitor),
  from /proc, and the template's own, paid once (local only; the Docker
  sandbox's memory is its container's cgroup, see sandbox_overhead.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, Path(__file__).resolve().parent):
    if str(path) not in sys.path:  # runnable from a checkout without installing
        sys.path.insert(0, str(path))

from sandbox_overhead import FLOOR_SCRIPT, proc_fields, session_pids, template_pids  # noqa: E402

from agentic_vision import open_session  # noqa: E402
from agentic_vision.sandboxing.bubblewrap import sandbox_python  # noqa: E402
from agentic_vision.sandboxing.executors import get_executor  # noqa: E402

PROGRAM = "print(1)"
INPUT = ("input.txt", b"one small input file\n")


def floor_rate(n: int) -> float:
    """Sessions per second of the floor: a fork per session of an interpreter that imported the libraries."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    code = f"open({INPUT[0]!r}, 'wb').write({INPUT[1]!r})\n{PROGRAM}"
    with tempfile.TemporaryDirectory() as where:  # each child writes its input file here
        out = subprocess.run([str(sandbox_python()), "-E", "-s", "-c", FLOOR_SCRIPT, str(n), code],
                             capture_output=True, text=True, timeout=600, env=env, cwd=where)
    if out.returncode != 0:
        raise SystemExit(f"the floor helper failed: {out.stderr[-1500:]}")
    samples = json.loads(out.stdout)["samples"]  # ms per forked session, timed by the parent
    return 1000.0 / statistics.mean(samples)


def session_rate(kind: str, pool: int, seconds: float, **options) -> tuple[float, int]:
    """Fresh sessions per second, sustained: open (one input) -> print(1) -> close, pool refills included."""
    get_executor(kind, pool_size=pool, **options).warm()
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        with open_session(kind, inputs=[INPUT], pool_size=pool, **options) as session:
            result = session.run(PROGRAM)
            if not result.ok or result.output != "1\n":
                raise SystemExit(f"a session did not run the program: {result.output[-500:]}")
        done += 1
    return done / (time.perf_counter() - started), done


def pss_mib(pids) -> float:
    total = 0
    for pid in pids:
        pss = proc_fields(pid)["Pss"]
        if pss is None:
            raise SystemExit("this kernel has no /proc/PID/smaps_rollup: PSS cannot be read")
        total += int(pss)
    return total / 1024


def pss_of_idle_workers(count: int, **options) -> tuple[float, float | None]:
    """MiB of PSS summed over ``count`` idle local workers' process trees (a forked one's
    monitor included), and the template's own (its bubblewrap and Python), or None."""
    executor = get_executor("local", pool_size=0, **options)
    workers = [executor.spawn() for _ in range(count)]
    try:
        time.sleep(0.5)
        pids = [pid for worker in workers for pid in session_pids(worker.pid)]
        template = executor.template_pid
        return pss_mib(pids), None if template is None else pss_mib(template_pids(template))
    finally:
        for worker in workers:
            worker.kill()


IMPORTS = "numpy, PIL.Image, PIL.ImageDraw, PIL.ImageOps, cv2, matplotlib.pyplot"


def import_seconds(repeat: int = 3) -> float:
    """Median time a fresh sandbox interpreter takes to import what a session preloads."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    code = f"import time\nt = time.perf_counter()\nimport {IMPORTS}\nprint(time.perf_counter() - t)"
    times = [float(subprocess.run([str(sandbox_python()), "-E", "-s", "-c", code], capture_output=True, text=True,
                                  check=True, env=env, timeout=120).stdout) for _ in range(repeat)]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", choices=["local", "docker"], default="local")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long sessions are opened back to back")
    parser.add_argument("--pool", type=int, default=2, help="warm sandboxes kept ready (default 2)")
    parser.add_argument("--idle", type=int, default=4, help="idle workers for the memory figure (default 4)")
    parser.add_argument("--floor-n", type=int, default=200, help="forks timed for the floor (default 200)")
    parser.add_argument("--cold-seconds", type=float, default=10.0,
                        help="local: how long cold-started sessions are timed, for comparison (0: not at all)")
    args = parser.parse_args()
    load = os.getloadavg()
    floor = floor_rate(args.floor_n)
    rate, count = session_rate(args.sandbox, args.pool, args.seconds)
    cold = None
    if args.sandbox == "local" and args.cold_seconds > 0:
        cold = session_rate("local", args.pool, args.cold_seconds, start="cold")
    print(f"sandbox: {args.sandbox}, warm pool {args.pool}; load average at start {load[0]:.2f} on {os.cpu_count()} cores")
    print(f"fresh sessions, sustained:     {rate:8.2f} /s  ({count} in {args.seconds:g} s: open with one input, "
          f"{PROGRAM}, close)")
    print(f"floor (fork, pre-imported):    {floor:8.1f} /s")
    print(f"ratio sessions / floor:        {rate / floor:8.4f}x  (goal >= 0.1x)")
    if cold is not None:
        print(f"cold starts instead:           {cold[0]:8.2f} /s  ({cold[1]} in {args.cold_seconds:g} s; "
              f"{cold[0] / floor:.4f}x the floor; the template is {rate / cold[0]:.1f}x faster)")
    if args.sandbox == "local":
        for label, options in (("idle warm sessions, PSS:", {}), ("the same, cold starts:", {"start": "cold"})):
            (one, template), (many, _) = pss_of_idle_workers(1, **options), pss_of_idle_workers(args.idle, **options)
            print(f"{label:30} 1: {one:.1f} MiB, {args.idle}: {many:.1f} MiB; "
                  f"each additional one {(many - one) / (args.idle - 1):.1f} MiB (goal <= 30 MiB)")
            if template is not None:
                print(f"the template, once:            {template:.1f} MiB PSS")
        print(f"imports alone, fresh Python:   {import_seconds() * 1000:.0f} ms ({IMPORTS})")


if __name__ == "__main__":
    main()
