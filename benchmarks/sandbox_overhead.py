#!/usr/bin/env python
"""Sandbox overhead: figures to quote, not a timed test.

    .venv/bin/python benchmarks/sandbox_overhead.py [--repeat N] [--sandbox local|docker]
                                                    [--guard|--no-guard] [--json]

One run measures, with the same machine and the same interpreter:

* the warm per-step overhead of an open session (``session.run("print(1)")``);
* a 400x300 crop of a 4000x3000 JPEG in a warm session, first and second
  crop of the same session (the runtime caches the decoded input);
* the time to open a session, from the warm pool and cold;
* baselines: a fresh sandbox + python per step (the naive way) and the
  floor, a fork of a pre-imported interpreter per step;
* the memory of one idle warm worker.

Every row is a spec in ``ROWS`` measured with ``timed``, and every sample is
checked (the output, the returned image), so a figure is never that of a
failing run.  Progress goes to stderr, figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

from agentic_vision.bench.stats import percentile  # noqa: E402
from agentic_vision.errors import AgenticVisionError  # noqa: E402
from agentic_vision.sandboxing.bubblewrap import LocalExecutor, bwrap_argv, sandbox_python  # noqa: E402
from agentic_vision.sandboxing.session import InputFile, Session  # noqa: E402

PHOTO, PHOTO_SIZE, CROP_W, CROP_H = "photo.jpg", (4000, 3000), 400, 300
CROP_AT = ((1200, 900), (2400, 1800))  # first and second crop: two regions, as a model zooming in would
CROP_CODE = "from PIL import Image\nimg = Image.open({path!r})\ndisplay(img.crop(({x}, {y}, {x} + {w}, {y} + {h})))\n"
# The naive and floor crops: the same work, with the PNG sent back on stdout.
CROP_TO_STDOUT = (
    "import io, sys\nfrom PIL import Image\nimg = Image.open({path!r})\nbuf = io.BytesIO()\n"
    "img.crop(({x}, {y}, {x} + {w}, {y} + {h})).save(buf, format='PNG')\nsys.stdout.buffer.write(buf.getvalue())\n"
)
TARGET_STEP_MS, TARGET_STEP_VS_FLOOR, TARGET_OPEN_MS = 5.0, 2.0, 50.0


class BenchError(Exception):
    pass


def crop(template: str, path: str, which: int = 0) -> str:
    x, y = CROP_AT[which]
    return template.format(path=path, x=x, y=y, w=CROP_W, h=CROP_H)


# -- the one timing helper and the checks -------------------------------------------------------------


def timed(n: int, prepare: Callable[[ExitStack], Callable[[], object]], check: Callable[[object], None],
          warmup: int = 0) -> list[float]:
    """``n`` samples (ms) of the action ``prepare(stack)`` returns, each checked by ``check``.

    ``prepare`` is the untimed set-up of one sample (open a session, let the pool settle);
    what it or the action puts on ``stack`` is closed after the check, untimed too.
    """
    samples = []
    for i in range(warmup + n):
        with ExitStack() as stack:
            action = prepare(stack)
            t0 = time.perf_counter()
            out = action()
            elapsed = (time.perf_counter() - t0) * 1000.0
            check(out)
        if i >= warmup:
            samples.append(elapsed)
    return samples


def expect(ok: bool, problem: str) -> None:
    if not ok:
        raise BenchError(problem)


def check_print(e) -> None:
    expect(e.ok and e.output == "1\n", f"print(1) gave {e.outcome}: {e.output[-500:]!r}")


# A step as a model writes it, heavy on what the guard checks: imports through
# its __import__, sys through its view, 4000 attribute reads through _getattr_.
ATTRIBUTE_STEP = (
    "import sys\nfrom PIL import Image\nim = Image.new('L', (64, 64))\ntotal = 0\n"
    "for i in range(2000):\n    total += im.width + im.size[1]\nprint(total, file=sys.stdout)\n"
)


def check_attribute_step(e) -> None:
    expect(e.ok and e.output == "256000\n", f"the attribute step gave {e.outcome}: {e.output[-500:]!r}")


def check_crop(e) -> None:
    sizes = [(im.width, im.height) for im in e.images]
    expect(e.ok and sizes == [(CROP_W, CROP_H)], f"the crop gave {e.outcome}, images {sizes}: {e.output[-800:]}")


def check_opened(session: Session) -> None:
    check_print(session.run("print(1)"))


def check_one(out: bytes) -> None:
    expect(out == b"1\n", f"print(1) printed {out[:200]!r}")


def check_png(out: bytes) -> None:
    expect(out.startswith(b"\x89PNG\r\n\x1a\n"), f"the crop did not send a PNG back: {out[:200]!r}")


def command(argv: list[str]) -> bytes:
    out = subprocess.run(argv, capture_output=True, timeout=120)
    expect(out.returncode == 0, f"{' '.join(argv[:3])} ... exited with {out.returncode}: {out.stderr[-800:]!r}")
    return out.stdout


# -- the rows ---------------------------------------------------------------------------------------------


@dataclass
class Bench:
    kind: str
    guard: bool
    n: int
    photo: InputFile
    photo_dir: Path
    floor_python: str
    pool: object  # an executor with pool_size=1
    cold: object  # an executor with pool_size=0: every open starts a sandbox (locally: forked from the template)
    cold_start: object = None  # local: pool_size=0 and start="cold" (a bubblewrap and a Python per open)
    notes: dict[str, str] = field(default_factory=dict)

    def open(self, executor, inputs=(), guard: bool | None = None) -> Session:
        return Session(executor, list(inputs), 60.0, self.guard if guard is None else guard)

    def settle(self) -> None:
        """Pool full and refill done, plus a pause as between two requests: no refill shares the CPU with a timing."""
        self.pool.warm()
        time.sleep(0.1)


def warm_step(guard: bool | None = None):
    def measure(b: Bench) -> list[float]:
        with b.open(b.cold, guard=guard) as session:
            return timed(10 * b.n, lambda stack: lambda: session.run("print(1)"), check_print, warmup=5)
    return measure


def attribute_step(guard: bool | None = None):
    def measure(b: Bench) -> list[float]:
        with b.open(b.cold, guard=guard) as session:
            return timed(5 * b.n, lambda stack: lambda: session.run(ATTRIBUTE_STEP), check_attribute_step, warmup=3)
    return measure


def crop_in_session(which: int):
    """Crop ``which`` in a new session that already ran print(1) and the crops before it."""
    def prepare(b: Bench, stack: ExitStack):
        session = stack.enter_context(b.open(b.cold, [b.photo]))
        check_print(session.run("print(1)"))
        for earlier in range(which):
            check_crop(session.run(crop(CROP_CODE, PHOTO, earlier)))
        return lambda: session.run(crop(CROP_CODE, PHOTO, which))
    return lambda b: timed(b.n, lambda stack: prepare(b, stack), check_crop)


def open_from_pool(key: str, with_photo: bool):
    def measure(b: Bench) -> list[float]:
        waiting, handed = [], []

        def prepare(stack):
            b.settle()
            # the worker the open should get: a process locally, a container in Docker (no host process)
            waiting[:] = [w.container or w.pid for w in b.pool.idle_workers()[:1]]
            return lambda: stack.enter_context(b.open(b.pool, [b.photo] if with_photo else []))

        def check(session):
            handed.append((session.container or session.worker_pid) in waiting)
            check_opened(session)

        samples = timed(b.n, prepare, check)
        b.notes[key] = f"the pooled worker was handed over in {sum(handed)}/{b.n} opens" + (
            "" if all(handed) else "; in the others it was found dead and a sandbox was started cold")
        return samples
    return measure


def first_step(b: Bench) -> list[float]:
    def prepare(stack):
        b.settle()
        session = stack.enter_context(b.open(b.pool))
        return lambda: session.run("print(1)")
    return timed(b.n, prepare, check_print)


def open_cold(b: Bench) -> list[float]:
    return timed(b.n, lambda stack: lambda: stack.enter_context(b.open(b.cold)), check_opened)


def open_cold_start(b: Bench) -> list[float]:
    return timed(b.n, lambda stack: lambda: stack.enter_context(b.open(b.cold_start)), check_opened)


FLOOR_SCRIPT = r'''
import io, json, os, struct, sys, time, warnings
warnings.simplefilter("ignore")
import numpy, PIL.Image, PIL.ImageDraw, PIL.ImageOps, cv2, matplotlib.pyplot
n, payload = int(sys.argv[1]), sys.argv[2]
samples = []
for i in range(3 + n):
    r, w = os.pipe()
    t0 = time.perf_counter()
    if os.fork() == 0:
        try:
            os.close(r)
            out = io.BytesIO()
            sys.stdout = io.TextIOWrapper(out, write_through=True)
            exec(compile(payload, "<code>", "exec"), {"__name__": "__main__"})
            with os.fdopen(w, "wb") as pipe:
                pipe.write(struct.pack(">I", len(out.getvalue())) + out.getvalue())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:  # timed until the output is in, not until the child has exited
        last = pipe.read(struct.unpack(">I", pipe.read(4))[0])
        t1 = time.perf_counter()
    os.wait()
    if i >= 3:
        samples.append((t1 - t0) * 1000.0)
print(json.dumps({"samples": samples, "last": last[:16].hex()}))
'''


def floor(code: Callable[[Bench], str], check: Callable[[bytes], None], cheap: bool = False):
    """A fork of an interpreter that imported numpy/PIL/cv2/matplotlib, per step (timed by the parent)."""
    def measure(b: Bench) -> list[float]:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        argv = [b.floor_python, "-E", "-s", "-c", FLOOR_SCRIPT, str(10 * b.n if cheap else b.n), code(b)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
        expect(out.returncode == 0, f"the floor helper failed: {out.stderr[-1500:]}")
        result = json.loads(out.stdout)
        check(bytes.fromhex(result["last"]))
        return result["samples"]
    return measure


def naive(argv: Callable[[Bench], list[str]], check: Callable[[bytes], None]):
    """A command per step (a fresh sandbox + python), after one untimed run for the page cache."""
    def measure(b: Bench) -> list[float]:
        args = argv(b)
        return timed(b.n, lambda stack: lambda: command(args), check, warmup=1)
    return measure


def fresh_bwrap(b: Bench, code: str, photo: bool = False) -> list[str]:
    binds = [(str(b.photo_dir), "/input", False)] if photo else []
    argv = bwrap_argv(b.cold.bwrap, b.cold.python, b.cold.limits, extra_binds=binds)
    return argv[: argv.index("--") + 2] + ["-E", "-s", "-c", code]


def docker_run(b: Bench, code: str, photo: bool = False) -> list[str]:
    from agentic_vision.sandboxing.docker import INSIDE_PYTHON

    volume = ["-v", f"{b.photo_dir}:/input:ro"] if photo else []
    return ["docker", "run", "--rm", "--network", "none", *volume, "--entrypoint", INSIDE_PYTHON, b.cold.image,
            "-c", code]


def docker_exec_print(b: Bench) -> list[float]:
    from agentic_vision.sandboxing.docker import INSIDE_PYTHON

    container = command(["docker", "run", "-d", "--rm", "--network", "none", "--entrypoint", "sleep", b.cold.image,
                         "infinity"]).decode().strip()
    try:
        return naive(lambda b: ["docker", "exec", container, INSIDE_PYTHON, "-c", "print(1)"], check_one)(b)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


@dataclass(frozen=True)
class Spec:
    key: str
    label: str
    group: str
    measure: Callable[[Bench], list[float]]
    kinds: tuple[str, ...] = ("local", "docker")
    when: Callable[[Bench], bool] = lambda b: True


INPUT = f"/input/{PHOTO}"
ROWS = [
    Spec("warm_step", "warm step: print(1) [guard {guard}]", "step", warm_step()),
    Spec("warm_step_noguard", "warm step: print(1) [guard off, for comparison]", "step", warm_step(False),
         when=lambda b: b.guard),
    Spec("attribute_step", "warm step: 4000 attribute reads, sys, PIL [guard {guard}]", "step", attribute_step()),
    Spec("attribute_step_noguard", "warm step: 4000 attribute reads, sys, PIL [guard off, for comparison]", "step",
         attribute_step(False), when=lambda b: b.guard),
    Spec("crop_first", "warm session: 1st crop of the 4000x3000 JPEG (decode)", "crop", crop_in_session(0)),
    Spec("crop_second", "warm session: 2nd crop, same session (cached decode)", "crop", crop_in_session(1)),
    Spec("open_warm", "open a session from the warm pool (no inputs)", "open", open_from_pool("open_warm", False)),
    Spec("open_warm_photo", "open from the warm pool with the JPEG input ({mib:.1f} MiB)", "open",
         open_from_pool("open_warm_photo", True)),
    Spec("first_step", "first print(1) in a fresh session (from the warm pool)", "open", first_step),
    Spec("open_cold", "open a session, none waiting (pool_size=0; local: forked from the template, "
         "Docker: a new container)", "open", open_cold),
    Spec("open_cold_start", "open a session cold (pool_size=0, start='cold': bwrap + python + imports)", "open",
         open_cold_start, kinds=("local",)),
    Spec("floor_print", "floor: fork of a pre-imported interpreter, print(1)", "baseline",
         floor(lambda b: "print(1)", check_one, cheap=True)),
    Spec("floor_crop", "floor: fork of a pre-imported interpreter, crop -> PNG", "baseline",
         floor(lambda b: crop(CROP_TO_STDOUT, str(b.photo_dir / PHOTO)), check_png)),
    Spec("fresh_bwrap_print", "naive: fresh bwrap + python -c 'print(1)' per step", "baseline",
         naive(lambda b: fresh_bwrap(b, "print(1)"), check_one), kinds=("local",)),
    Spec("fresh_bwrap_crop", "naive: fresh bwrap + python -c '<open, crop, save>'", "baseline",
         naive(lambda b: fresh_bwrap(b, crop(CROP_TO_STDOUT, INPUT), photo=True), check_png), kinds=("local",)),
    Spec("docker_run_print", "naive: docker run --rm IMAGE python -c 'print(1)' per step", "baseline",
         naive(lambda b: docker_run(b, "print(1)"), check_one), kinds=("docker",)),
    Spec("docker_run_crop", "naive: docker run --rm IMAGE python -c '<open, crop, save>'", "baseline",
         naive(lambda b: docker_run(b, crop(CROP_TO_STDOUT, INPUT), photo=True), check_png), kinds=("docker",)),
    Spec("docker_exec_print", "docker exec CONTAINER python -c 'print(1)' per step", "baseline", docker_exec_print,
         kinds=("docker",)),
]
RATIOS = [  # (label, numerator row, denominator row), shown when both rows ran
    ("warm step guard on / off (print(1))", "warm_step", "warm_step_noguard"),
    ("attribute step guard on / off", "attribute_step", "attribute_step_noguard"),
    ("warm step / floor (print(1))", "warm_step", "floor_print"),
    ("warm step / fresh bwrap (print(1))", "warm_step", "fresh_bwrap_print"),
    ("warm step / docker exec (print(1))", "warm_step", "docker_exec_print"),
    ("warm step / docker run (print(1))", "warm_step", "docker_run_print"),
    ("fresh bwrap / floor (print(1))", "fresh_bwrap_print", "floor_print"),
    ("1st crop / floor crop", "crop_first", "floor_crop"),
    ("2nd crop / floor crop", "crop_second", "floor_crop"),
    ("1st crop / fresh-bwrap crop", "crop_first", "fresh_bwrap_crop"),
    ("2nd crop / fresh-bwrap crop", "crop_second", "fresh_bwrap_crop"),
    ("1st crop / docker run crop", "crop_first", "docker_run_crop"),
    ("2nd crop / 1st crop", "crop_second", "crop_first"),
    ("open warm / open with none waiting", "open_warm", "open_cold"),
    ("open with none waiting / open cold (template / cold start)", "open_cold", "open_cold_start"),
]


# -- memory ---------------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from the children file of each of its threads)."""
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:  # a process or thread that just ended
        pass
    return [pid] + [p for kid in kids for p in process_tree(kid)]


def proc_fields(pid: int) -> dict:
    """Name, RSS and (where the kernel has smaps_rollup) PSS of one process, in KiB."""
    found = {"Name": "?", "VmRSS": "0", "Pss": None}
    for name in ("status", "smaps_rollup"):
        try:
            for key, _, value in (line.partition(":") for line in Path(f"/proc/{pid}/{name}").read_text().splitlines()):
                if key in found:
                    found[key] = value.split()[0]
        except OSError:
            pass
    return found


def parent_pid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def worker_memory(b: Bench, pid: int, container: str | None, what: str) -> dict:
    if b.kind == "docker":  # the container's cgroup
        out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
                             capture_output=True, text=True, timeout=60)
        usage = out.stdout.strip() or f"unknown ({out.stderr.strip()[-200:]})"
        return {"what": what, "text": f"container memory (docker stats, cgroup usage) {usage}"}
    return memory_of(session_pids(pid), what)


def session_pids(pid: int) -> list[int]:
    """A local worker's processes: its tree, and for a session forked from the template its
    monitor too (the template's child that waits for it)."""
    pids = process_tree(pid)
    monitor = parent_pid(pid)
    if b"template.py" in read_bytes(f"/proc/{monitor}/cmdline"):
        pids.append(monitor)
    return pids


def template_pids(template: int) -> list[int]:
    """The template's own processes (its bubblewrap and Python), not the sessions it forked."""
    return [template] + [p for p in process_tree(template)[1:] if parent_pid(p) == template]


def memory_of(pids: list[int], what: str) -> dict:
    procs = [proc_fields(p) for p in pids]
    pss = [p["Pss"] for p in procs]
    return {"what": what, "processes": ", ".join(f"{p['Name']} {int(p['VmRSS']) / 1024:.1f}" for p in procs),
            "rss_mib": sum(int(p["VmRSS"]) for p in procs) / 1024,
            "pss_mib": None if None in pss else sum(map(int, pss)) / 1024}


def host_memory_per_session(b: Bench, k: int = 4) -> dict:
    """Host RSS growth per live Docker session: k sessions open at once, minus none open."""
    def host_kib() -> int:  # this process and every process under it: what the host pays, not the containers
        return sum(int(proc_fields(pid)["VmRSS"]) for pid in process_tree(os.getpid()))

    before = host_kib()
    with ExitStack() as stack:
        for session in [stack.enter_context(b.open(b.cold)) for _ in range(k)]:
            check_print(session.run("print(1)"))
        time.sleep(0.5)
        per = (host_kib() - before) / k / 1024
    return {"what": f"host memory per live session ({k} open at once)",
            "text": f"{per:.1f} MiB RSS on the host (this process and its children, growth / {k})"}


def measure_memory(b: Bench) -> list[dict]:
    found = [host_memory_per_session(b)] if b.kind == "docker" else []
    worker = b.cold.spawn()  # what waits in a pool: ready, never used
    try:
        time.sleep(0.5)
        found.append(worker_memory(b, worker.pid, worker.container, "idle warm worker (in the pool)"))
        template = b.cold.template_pid if b.kind == "local" else None
        if template is not None:
            found.append(memory_of(template_pids(template), "the template, once per executor (shared by every session)"))
    finally:
        worker.kill()
    with b.open(b.cold, [b.photo]) as session:
        for which in (0, 1):
            check_crop(session.run(crop(CROP_CODE, PHOTO, which)))
        found.append(worker_memory(b, session.worker_pid, session.container,
                                   "session after two crops (decoded input cached)"))
    return found


# -- the machine and the photo ----------------------------------------------------------------------------


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "missing"
    return ((out.stdout or out.stderr).strip().splitlines() or ["unknown"])[0]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_info(kind: str, floor_python: str, guard: bool, guard_why: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    tool = ["bwrap", "--version"] if kind == "local" else ["docker", "version", "--format", "{{.Server.Version}}"]
    version = [floor_python, "-E", "-s", "-c", "import platform; print(platform.python_version())"]
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "kernel": f"{platform.system()} {platform.release()}",
            "python_host": platform.python_version(), "python_sandbox": first_line(version),
            "sandbox_python": floor_python, "sandbox": kind, "guard": guard, "guard_why": guard_why,
            "load_avg_start": load_average(), ("bwrap" if kind == "local" else "docker"): first_line(tool)}


def make_photo(directory: Path) -> tuple[Path, str]:
    """A 4000x3000 JPEG (quality 90) made from a real photo shipped in a package."""
    import matplotlib
    import skimage.data
    from PIL import Image

    candidates = [Path(skimage.data.__file__).parent / "hubble_deep_field.jpg",
                  Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    source = next((p for p in candidates if p.exists()), None)
    expect(source is not None, "no sample photo found: install the 'test' extra (scikit-image, matplotlib)")
    img = Image.open(source).convert("RGB")
    w, h = img.size  # centre-crop to 4:3 first so the photo is enlarged, not stretched
    cw, ch = min(w, round(h * 4 / 3)), min(h, round(w * 3 / 4))
    img = img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    img.resize(PHOTO_SIZE, Image.LANCZOS).save(directory / PHOTO, format="JPEG", quality=90)
    return directory / PHOTO, source.name


# -- the report -------------------------------------------------------------------------------------------


def stats(samples: list[float]) -> dict:
    return {"n": len(samples), "median_ms": statistics.median(samples), "p95_ms": percentile(samples, 95),
            "mean_ms": statistics.fmean(samples), "min_ms": min(samples), "max_ms": max(samples)}


def ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ratios(rows: dict) -> list[tuple[str, float, float]]:
    return [(label, rows[a]["median_ms"] / rows[b]["median_ms"], rows[a]["p95_ms"] / rows[b]["p95_ms"])
            for label, a, b in RATIOS if a in rows and b in rows]


def targets(rows: dict) -> list[dict]:
    found = []
    if "warm_step" in rows:
        s = rows["warm_step"]
        found.append(("warm step print(1)", f"median {ms(s['median_ms'])} ms, p95 {ms(s['p95_ms'])} ms",
                      f"<= {TARGET_STEP_MS:g} ms", s["median_ms"] <= TARGET_STEP_MS))
    if "warm_step" in rows and "floor_print" in rows:
        r, p = (rows["warm_step"][k] / rows["floor_print"][k] for k in ("median_ms", "p95_ms"))
        found.append(("warm step / floor", f"{r:.2f}x (p95 {p:.2f}x)", f"<= {TARGET_STEP_VS_FLOOR:g}x",
                      r <= TARGET_STEP_VS_FLOOR))
    if "open_warm" in rows:
        o = rows["open_warm"]
        found.append(("ready session (warm pool)", f"median {ms(o['median_ms'])} ms, p95 {ms(o['p95_ms'])} ms",
                      f"<= {TARGET_OPEN_MS:g} ms", o["median_ms"] <= TARGET_OPEN_MS))
    if "crop_first" in rows and "crop_second" in rows:
        a, b = rows["crop_first"]["median_ms"], rows["crop_second"]["median_ms"]
        found.append(("2nd crop faster than 1st", f"{ms(b)} vs {ms(a)} ms ({a / b:.1f}x faster)", "2nd < 1st", b < a))
    return [{"target": t, "measured": m, "goal": g, "met": ok} for t, m, g, ok in found]


def columns(lines: list, left: int = 1) -> list[str]:
    """Aligned columns, the first ``left`` to the left and the others to the right; a None line is blank."""
    widths = [max(len(line[i]) for line in lines if line) for i in range(len(lines[0]))]
    return ["" if line is None else "  ".join(c.ljust(w) if i < left else c.rjust(w)
                                              for i, (c, w) in enumerate(zip(line, widths))).rstrip() for line in lines]


def report(m: dict, rows: dict, memory: list[dict], notes: list[str]) -> str:
    tool = f"bwrap {m['bwrap'].split()[-1]}" if "bwrap" in m else f"docker {m['docker']}"
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}, Python {m['python_host']} (host) / "
             f"{m['python_sandbox']} (sandbox), {tool}, guard {'on' if m['guard'] else 'off'} ({m['guard_why']})",
             f"sandbox: {m['sandbox']}; interpreter of the local sandbox and the floor: {m['sandbox_python']}",
             f"photo: {m['photo']}",
             f"load average (1/5/15 min) at start: {m['load_avg_start']}, at end: {m['load_avg_end']} "
             f"on {m['cores']} cores (other work on the machine inflates every row)", ""]
    table, group = [["", "n", "median", "p95", "mean", "min"]], None
    for r in rows.values():  # in ROWS order, a blank line between groups
        table += [None] if group not in (None, r["group"]) else []
        group = r["group"]
        table.append([r["label"], str(r["n"])] + [ms(r[k]) for k in ("median_ms", "p95_ms", "mean_ms", "min_ms")])
    table = columns(table)
    lines += [table[0] + "   (ms)", *table[1:], ""]
    lines += columns([["ratios", "median", "p95"]] + [[lbl, f"{a:.3g}x", f"{p:.3g}x"] for lbl, a, p in ratios(rows)])
    lines += ["", *columns([["targets", "measured", "goal", "met"]] + [
        [g["target"], g["measured"], g["goal"], "yes" if g["met"] else "NO"] for g in targets(rows)], left=4)]
    docker = any("text" in e for e in memory)
    lines += ["", "memory (Docker: the container's cgroup usage)" if docker
              else "memory (RSS/PSS summed over the sandbox's processes from /proc, MiB)"]
    for e in memory:
        pss = "n/a" if e.get("pss_mib") is None else f"{e['pss_mib']:.1f}"
        lines.append(f"  {e['what']}: {e['text']}" if docker
                     else f"  {e['what']}: RSS {e['rss_mib']:.1f}, PSS {pss}  [{e['processes']}]")
    return "\n".join(lines + [""] + [f"* {r['label']}: {r['note']}" for r in rows.values() if r["note"]] + notes)


# -- main -----------------------------------------------------------------------------------------------------


def executors(kind: str) -> tuple[object, object, object]:
    if kind == "local":
        return LocalExecutor(pool_size=1), LocalExecutor(pool_size=0), LocalExecutor(pool_size=0, start="cold")
    from agentic_vision.sandboxing.docker import DockerExecutor, docker_problem

    problem = docker_problem()
    expect(problem is None, f"Docker is unavailable: {problem}")
    return DockerExecutor(pool_size=1), DockerExecutor(pool_size=0), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="repetitions of each expensive row (default 20); "
                        "cheap rows (a warm step, the fork floor) take 10x as many")
    parser.add_argument("--sandbox", choices=("local", "docker"), default="local")
    parser.add_argument("--guard", action=argparse.BooleanOptionalAction, default=None,
                        help="run model code under the RestrictedPython guard (default: on)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    guard = args.guard is not False
    floor_python = str(sandbox_python())
    machine = machine_info(args.sandbox, floor_python, guard,
                           "the default" if args.guard is None else "--guard" if guard else "--no-guard")
    started, rows = time.perf_counter(), {}
    with tempfile.TemporaryDirectory(prefix="av-bench-") as tmp:
        photo_path, source = make_photo(Path(tmp))
        os.chmod(tmp, 0o755)  # readable from inside the sandbox's user namespace
        photo = InputFile(PHOTO, photo_path.read_bytes())
        mib = len(photo.data) / 2**20
        machine["photo"] = (f"{source} resized to {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, JPEG q90, {mib:.2f} MiB; "
                            f"crop {CROP_W}x{CROP_H}")
        pool, cold, cold_start = executors(args.sandbox)
        b = Bench(args.sandbox, guard, max(2, args.repeat), photo, Path(tmp), floor_python, pool, cold, cold_start=cold_start)
        try:
            for spec in (s for s in ROWS if args.sandbox in s.kinds and s.when(b)):
                label = spec.label.format(guard="on" if guard else "off", mib=mib)
                print(f"{args.sandbox}: {label}", file=sys.stderr, flush=True)
                rows[spec.key] = row = {"key": spec.key, "label": label, "group": spec.group, **stats(spec.measure(b))}
                print(f"  median {row['median_ms']:.3f} ms, p95 {row['p95_ms']:.3f} ms", file=sys.stderr, flush=True)
            memory = measure_memory(b)
        finally:
            for executor in (pool, cold, cold_start):
                if executor is not None:
                    executor.shutdown()
    for key, row in rows.items():
        row["note"] = b.notes.get(key, "")
    notes = ["note: warm step = session.run() round trip on the host; crops run in a session that already ran "
             "print(1); 'open' = Session() returning (acquire + init, no run); the floor runs outside any sandbox "
             "with the local sandbox's interpreter" + ("; the fresh-bwrap baselines use bwrap_argv() without the "
                                                       "per-session cgroup" if args.sandbox == "local" else ""),
             f"note: total benchmark time {time.perf_counter() - started:.0f} s"]
    notes += ["skipped: Docker rows: not in this run (use --sandbox docker)"] if args.sandbox == "local" else []
    machine["load_avg_end"] = load_average()
    if args.json:
        print(json.dumps({"machine": machine, "rows": list(rows.values()), "memory": memory, "notes": notes,
                          "ratios": [{"ratio": label, "median": a, "p95": p} for label, a, p in ratios(rows)],
                          "targets": targets(rows)}, indent=2))
    else:
        print(report(machine, rows, memory, notes))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, AgenticVisionError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
