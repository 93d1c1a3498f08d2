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

Every sample is checked (the output, the returned image) so a figure is never
that of a failing run.  Progress goes to stderr, figures to stdout.  Docker
rows are one function each (``docker_*`` below) and run with
``--sandbox docker`` once ``agentic_vision.sandboxing.docker`` exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

from agentic_vision.sandboxing.session import InputFile, Session  # noqa: E402

PHOTO_NAME = "photo.jpg"
PHOTO_SIZE = (4000, 3000)
CROP_W, CROP_H = 400, 300
CROP_AT = ((1200, 900), (2400, 1800))  # first and second crop: two regions, as a model zooming in would
CROP_CODE = (
    "from PIL import Image\n"
    "img = Image.open({name!r})\n"
    "display(img.crop(({x}, {y}, {x} + {w}, {y} + {h})))\n"
)
# The naive and floor crops: the same work, with the PNG sent back on stdout / a pipe.
CROP_TO_STDOUT = (
    "import io, sys\n"
    "from PIL import Image\n"
    "img = Image.open({path!r})\n"
    "buf = io.BytesIO()\n"
    "img.crop(({x}, {y}, {x} + {w}, {y} + {h})).save(buf, format='PNG')\n"
    "sys.stdout.buffer.write(buf.getvalue())\n"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TARGET_STEP_MS = 5.0
TARGET_STEP_VS_FLOOR = 2.0
TARGET_OPEN_MS = 50.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- statistics ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Row:
    key: str
    label: str
    samples_ms: list[float]
    group: str = ""
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 0.95)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "group": self.group,
            "n": len(self.samples_ms),
            "median_ms": round(self.median, 4),
            "p95_ms": round(self.p95, 4),
            "mean_ms": round(self.mean, 4),
            "min_ms": round(min(self.samples_ms), 4),
            "max_ms": round(max(self.samples_ms), 4),
            "note": self.note,
        }


@dataclass
class Results:
    machine: dict
    rows: dict[str, Row] = field(default_factory=dict)
    memory: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row | None) -> None:
        if row is not None:
            self.rows[row.key] = row
            log(f"  {row.label}: median {row.median:.3f} ms, p95 {row.p95:.3f} ms (n={len(row.samples_ms)})")


# -- the machine ----------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def python_version(python: str) -> str:
    return tool_version([python, "-E", "-s", "-c", "import platform; print(platform.python_version())"])


def machine_info(sandbox: str, sandbox_python: str, guard: bool, guard_why: str) -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "cpu": cpu_model(),
        "cores": cores,
        "kernel": f"{platform.system()} {platform.release()}",
        "python_host": platform.python_version(),
        "python_sandbox": python_version(sandbox_python),
        "sandbox_python": sandbox_python,
        "sandbox": sandbox,
        "guard": guard,
        "guard_why": guard_why,
        "load_avg_start": load_average(),
    }
    if sandbox == "local":
        info["bwrap"] = tool_version(["bwrap", "--version"])
    else:
        info["docker"] = tool_version(["docker", "version", "--format", "{{.Server.Version}}"])
    return info


def header_line(m: dict) -> str:
    tool = f"bwrap {m['bwrap'].split()[-1]}" if "bwrap" in m else f"docker {m.get('docker', '?')}"
    return (
        f"machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}, Python {m['python_host']} (host) / "
        f"{m['python_sandbox']} (sandbox), {tool}, guard {'on' if m['guard'] else 'off'} ({m['guard_why']})"
    )


# -- the photo ----------------------------------------------------------------------------


def make_photo(directory: Path) -> tuple[Path, str]:
    """A 4000x3000 JPEG (quality 90) made from a real photo shipped in a package."""
    from PIL import Image

    candidates = []
    try:
        import skimage.data

        candidates.append(Path(skimage.data.__file__).parent / "hubble_deep_field.jpg")
    except ImportError:
        pass
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    except ImportError:
        pass
    source = next((p for p in candidates if p.exists()), None)
    if source is None:
        raise SystemExit("no sample photo found: install scikit-image or matplotlib (the 'test' extra)")
    img = Image.open(source).convert("RGB")
    # Centre-crop to 4:3 first so the photo is enlarged, not stretched.
    w, h = img.size
    target = PHOTO_SIZE[0] / PHOTO_SIZE[1]
    if w / h > target:
        cw = round(h * target)
        img = img.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
    else:
        ch = round(w / target)
        img = img.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
    img = img.resize(PHOTO_SIZE, Image.LANCZOS)
    path = directory / PHOTO_NAME
    img.save(path, format="JPEG", quality=90)
    return path, source.name


def crop_code(which: int) -> str:
    x, y = CROP_AT[which]
    return CROP_CODE.format(name=PHOTO_NAME, x=x, y=y, w=CROP_W, h=CROP_H)


# -- checks -----------------------------------------------------------------------------------


class BenchError(Exception):
    pass


def check_print(execution) -> None:
    if not execution.ok or execution.output != "1\n":
        raise BenchError(f"print(1) gave {execution.outcome}: {execution.output[-500:]!r}")


def check_crop(execution) -> None:
    if not execution.ok or len(execution.images) != 1:
        raise BenchError(f"the crop gave {execution.outcome}, {len(execution.images)} image(s): {execution.output[-800:]}")
    img = execution.images[0]
    if (img.width, img.height) != (CROP_W, CROP_H):
        raise BenchError(f"the crop came back {img.width}x{img.height}")


def check_png(data: bytes, what: str) -> None:
    if not data.startswith(PNG_MAGIC):
        raise BenchError(f"{what} did not send a PNG back: {data[:200]!r}")


# -- session rows (any executor with acquire()/warm()) -------------------------------------------


def open_session(executor, inputs: list[InputFile], guard: bool) -> Session:
    return Session(executor, inputs, 60.0, guard)


def wait_pool_full(executor, timeout: float = 120.0) -> None:
    """Waits until the background refill is done, so it does not share the CPU with a timing."""
    executor.pool.warm(timeout)


def row_warm_step(executor, guard: bool, n: int, key="warm_step", label=None) -> Row:
    """session.run('print(1)') round trip in an open session, after a few warm-up runs."""
    with open_session(executor, [], guard) as session:
        for _ in range(5):
            check_print(session.run("print(1)"))
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            execution = session.run("print(1)")
            samples.append((time.perf_counter() - t0) * 1000.0)
            check_print(execution)
    return Row(key, label or f"warm step: print(1) [guard {'on' if guard else 'off'}]", samples, "step")


def rows_crops(executor, guard: bool, photo: InputFile, n: int) -> list[Row]:
    """First and second crop of the same session; a new session (untimed) per repetition."""
    first, second = [], []
    for i in range(n):
        with open_session(executor, [photo], guard) as session:
            check_print(session.run("print(1)"))  # the session is warm: only the crop is new
            for which, samples in ((0, first), (1, second)):
                code = crop_code(which)
                t0 = time.perf_counter()
                execution = session.run(code)
                samples.append((time.perf_counter() - t0) * 1000.0)
                check_crop(execution)
    return [
        Row("crop_first", "warm session: 1st crop of the 4000x3000 JPEG (decode)", first, "crop"),
        Row("crop_second", "warm session: 2nd crop, same session (cached decode)", second, "crop"),
    ]


def rows_open_warm(executor, guard: bool, photo: InputFile, n: int) -> list[Row]:
    """Session() from a warm pool (no inputs, and with the photo), plus the first print(1) after it.

    Before each open the pool is full and the refill thread is done (plus a short settle, as
    between two real requests), so the refill does not share the CPU with the timing.
    """
    from agentic_vision.errors import SandboxUnavailable

    executor.warm()
    samples = {"plain": [], "photo": [], "first_step": []}
    handed = {"plain": 0, "photo": 0}  # opens that really got the pooled worker
    failed = {"plain": [], "photo": []}

    def pooled_worker():
        wait_pool_full(executor)
        time.sleep(0.1)
        idle = executor.pool.idle
        return idle[0] if idle else None

    for i in range(2 * n):
        kind = "plain" if i % 2 == 0 else "photo"
        expected = pooled_worker()
        t0 = time.perf_counter()
        try:
            session = open_session(executor, [photo] if kind == "photo" else [], guard)
        except SandboxUnavailable as exc:
            failed[kind].append(str(exc))
            continue
        t1 = time.perf_counter()
        samples[kind].append((t1 - t0) * 1000.0)
        handed[kind] += expected is not None and getattr(session, "_worker", None) is expected
        with session:
            execution = session.run("print(1)")
            if kind == "plain":
                samples["first_step"].append((time.perf_counter() - t1) * 1000.0)
            check_print(execution)
    wait_pool_full(executor)
    for kind in failed:
        if len(failed[kind]) == n:
            raise BenchError(f"every open from the warm pool failed: {failed[kind][-1]}")

    def note(kind: str) -> str:
        parts = []
        if executor.pool.size:
            k, m = handed[kind], len(samples[kind])
            parts.append(f"the pooled worker was handed over in {k}/{m} opens"
                         + ("" if k == m else "; in the others it was found dead and a sandbox was started cold"))
        if failed[kind]:
            parts.append(f"{len(failed[kind])}/{n} opens FAILED ({failed[kind][-1]}) and are not in the figures")
        return "; ".join(parts)

    mib = len(photo.data) / 2**20
    return [
        Row("open_warm", "open a session from the warm pool (no inputs)", samples["plain"], "open", note("plain")),
        Row("open_warm_photo", f"open from the warm pool with the JPEG input ({mib:.1f} MiB)", samples["photo"], "open",
            note("photo")),
        Row("first_step", "first print(1) in a fresh session (from the warm pool)", samples["first_step"], "open"),
    ]


def row_open_cold(executor, guard: bool, n: int) -> Row:
    """Session() with an empty pool: a new sandbox, interpreter and imports."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        session = open_session(executor, [], guard)
        samples.append((time.perf_counter() - t0) * 1000.0)
        check_print(session.run("print(1)"))
        session.close()
    return Row("open_cold", "open a session cold (pool_size=0: sandbox + python + imports)", samples, "open")


# -- the floor: fork of a pre-imported interpreter ------------------------------------------------

FLOOR_SCRIPT = r'''
import io, json, os, struct, sys, time, warnings
warnings.simplefilter("ignore")
os.environ.setdefault("MPLBACKEND", "Agg")
import numpy, PIL.Image, PIL.ImageDraw, PIL.ImageOps, cv2, matplotlib.pyplot
mode, n, warmup, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def run_print():
    out = io.StringIO()
    sys.stdout = out
    exec(compile(payload, "<code>", "exec"), {"__name__": "__main__"})
    sys.stdout = sys.__stdout__
    return out.getvalue().encode()

def run_crop():
    out = io.BytesIO()
    sys.stdout = io.TextIOWrapper(out, write_through=True)
    exec(compile(payload, "<code>", "exec"), {"__name__": "__main__"})
    sys.stdout.flush()
    return out.getvalue()

work = run_print if mode == "print" else run_crop

def read_exact(fd, k):
    parts = []
    while k:
        chunk = os.read(fd, min(k, 1 << 20))
        if not chunk:
            raise SystemExit("child closed the pipe early")
        parts.append(chunk)
        k -= len(chunk)
    return b"".join(parts)

samples, last = [], b""
for i in range(warmup + n):
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            data = work()
            view = memoryview(struct.pack(">I", len(data)) + data)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(0)
    os.close(w)
    (size,) = struct.unpack(">I", read_exact(r, 4))
    last = read_exact(r, size)
    t1 = time.perf_counter()
    os.close(r)
    os.waitpid(pid, 0)
    if i >= warmup:
        samples.append((t1 - t0) * 1000.0)
print(json.dumps({"samples": samples, "last": last[:16].hex(), "size": len(last)}))
'''


def floor_samples(python: str, mode: str, payload: str, n: int) -> tuple[list[float], bytes]:
    argv = [python, "-E", "-s", "-c", FLOOR_SCRIPT, mode, str(n), "3", payload]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise BenchError(f"the floor helper failed: {out.stderr[-1500:]}")
    result = json.loads(out.stdout)
    return result["samples"], bytes.fromhex(result["last"])


def row_floor_print(python: str, n: int) -> Row:
    samples, last = floor_samples(python, "print", "print(1)", n)
    if last != b"1\n":
        raise BenchError(f"the floor child printed {last!r}")
    return Row("floor_print", "floor: fork of a pre-imported interpreter, print(1)", samples, "baseline")


def row_floor_crop(python: str, photo: Path, n: int) -> Row:
    x, y = CROP_AT[0]
    code = CROP_TO_STDOUT.format(path=str(photo), x=x, y=y, w=CROP_W, h=CROP_H)
    samples, last = floor_samples(python, "crop", code, n)
    check_png(last, "the floor crop")
    return Row("floor_crop", "floor: fork of a pre-imported interpreter, crop -> PNG", samples, "baseline")


# -- baselines: a fresh bubblewrap sandbox per step (the naive way) --------------------------------------


def fresh_bwrap_argv(executor, code: str, binds=()) -> list[str]:
    from agentic_vision.sandboxing.bubblewrap import bwrap_argv

    argv = bwrap_argv(executor.bwrap, executor.python, executor.limits, extra_binds=list(binds))
    return argv[: argv.index("--") + 2] + ["-E", "-s", "-c", code]


def run_checked(argv: list[str], what: str) -> bytes:
    out = subprocess.run(argv, capture_output=True, timeout=120)
    if out.returncode != 0:
        raise BenchError(f"{what} exited with {out.returncode}: {out.stderr[-800:]!r}")
    return out.stdout


def time_command(argv: list[str], what: str, n: int, check) -> list[float]:
    """One untimed run (page cache), then n timed runs in ms; ``check(out)`` raises on a bad output."""
    run_checked(argv, what)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = run_checked(argv, what)
        samples.append((time.perf_counter() - t0) * 1000.0)
        check(out)
    return samples


def printed_one(what: str, out: bytes, exact: bool = False) -> None:
    if (out if exact else out.strip()) != (b"1\n" if exact else b"1"):
        raise BenchError(f"{what} printed {out!r}")


def row_fresh_bwrap_print(executor, n: int) -> Row:
    argv = fresh_bwrap_argv(executor, "print(1)")
    samples = time_command(argv, "bwrap print(1)", n, lambda out: printed_one("bwrap print(1)", out, exact=True))
    return Row("fresh_bwrap_print", "naive: fresh bwrap + python -c 'print(1)' per step", samples, "baseline")


def row_fresh_bwrap_crop(executor, photo: Path, n: int) -> Row:
    x, y = CROP_AT[0]
    code = CROP_TO_STDOUT.format(path=f"/input/{photo.name}", x=x, y=y, w=CROP_W, h=CROP_H)
    argv = fresh_bwrap_argv(executor, code, binds=[(str(photo.parent), "/input", False)])
    samples = time_command(argv, "bwrap crop", n, lambda out: check_png(out, "the bwrap crop"))
    return Row("fresh_bwrap_crop", "naive: fresh bwrap + python -c '<open, crop, save>'", samples, "baseline")


# -- Docker rows (used once agentic_vision.sandboxing.docker exists) --------------------------------------------


def docker_image(module, executor) -> str | None:
    for obj, name in ((executor, "image"), (module, "IMAGE"), (module, "DEFAULT_IMAGE"), (module, "IMAGE_NAME")):
        value = getattr(obj, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def docker_python(module) -> str:
    return getattr(module, "INSIDE_PYTHON", None) or "python"


def row_docker_run_print(image: str, python: str, n: int) -> Row:
    argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", python, image, "-c", "print(1)"]
    samples = time_command(argv, "docker run print(1)", n, lambda out: printed_one("docker run", out))
    return Row("docker_run_print", "naive: docker run --rm IMAGE python -c 'print(1)' per step", samples, "baseline")


def row_docker_run_crop(image: str, python: str, photo: Path, n: int) -> Row:
    x, y = CROP_AT[0]
    code = CROP_TO_STDOUT.format(path=f"/input/{photo.name}", x=x, y=y, w=CROP_W, h=CROP_H)
    argv = ["docker", "run", "--rm", "--network", "none", "-v", f"{photo.parent}:/input:ro",
            "--entrypoint", python, image, "-c", code]
    samples = time_command(argv, "docker run crop", n, lambda out: check_png(out, "the docker run crop"))
    return Row("docker_run_crop", "naive: docker run --rm IMAGE python -c '<open, crop, save>'", samples, "baseline")


def row_docker_exec_print(image: str, python: str, n: int) -> Row:
    started = run_checked(["docker", "run", "-d", "--rm", "--network", "none", "--entrypoint", "sleep", image, "infinity"],
                          "docker run -d")
    container = started.decode().strip()
    try:
        argv = ["docker", "exec", container, python, "-c", "print(1)"]
        samples = time_command(argv, "docker exec print(1)", n, lambda out: printed_one("docker exec", out))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
    return Row("docker_exec_print", "docker exec CONTAINER python -c 'print(1)' per step", samples, "baseline")


# -- memory -----------------------------------------------------------------------------------------------------


def process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def memory_kib(pid: int) -> dict:
    """RSS and (where the kernel has smaps_rollup) PSS of one process, in KiB."""
    found = {"pid": pid, "name": "?", "rss": 0, "pss": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Name:"):
                found["name"] = line.split()[1]
            elif line.startswith("VmRSS:"):
                found["rss"] = int(line.split()[1])
    except OSError:
        return found
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found["pss"] = int(line.split()[1])
    except OSError:
        pass
    return found


def local_worker_memory(worker, what: str) -> dict:
    procs = [memory_kib(pid) for pid in process_tree(worker.proc.pid)]
    pss = [p["pss"] for p in procs]
    return {
        "what": what,
        "processes": ", ".join(f"{p['name']} {p['rss'] / 1024:.1f}" for p in procs),
        "rss_mib": sum(p["rss"] for p in procs) / 1024,
        "pss_mib": None if None in pss else sum(pss) / 1024,
    }


def docker_memory(container: str, what: str) -> dict:
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
                         capture_output=True, text=True, timeout=60)
    usage = out.stdout.strip() or f"unknown ({out.stderr.strip()[-200:]})"
    return {"what": what, "text": f"container memory (docker stats, cgroup usage) {usage}"}


def measure_memory_docker(executor, guard: bool, photo: InputFile) -> list[dict]:
    found = []
    worker = executor.spawn()
    try:
        time.sleep(0.5)
        found.append(docker_memory(getattr(worker, "container", ""), "idle warm worker (in the pool)"))
    finally:
        worker.kill()
    with open_session(executor, [photo], guard) as session:
        for which in (0, 1):
            check_crop(session.run(crop_code(which)))
        worker = getattr(session, "_worker", None)
        if getattr(worker, "container", ""):
            found.append(docker_memory(worker.container, "session after two crops (decoded input cached)"))
    return found


def measure_memory_local(executor, guard: bool, photo: InputFile) -> list[dict]:
    found = []
    worker = executor.spawn()  # a pool worker: ready, never used
    try:
        time.sleep(0.5)
        found.append(local_worker_memory(worker, "idle warm worker (in the pool)"))
    finally:
        worker.kill()
    with open_session(executor, [photo], guard) as session:
        for which in (0, 1):
            check_crop(session.run(crop_code(which)))
        worker = getattr(session, "_worker", None)
        if worker is not None:
            found.append(local_worker_memory(worker, "session after two crops (decoded input cached)"))
    return found


# -- sandboxes ---------------------------------------------------------------------------------------------


@dataclass
class Backend:
    kind: str
    pool: object  # executor with pool_size=1, warmed
    cold: object  # executor with pool_size=0: every acquire() starts a sandbox
    baselines: list[Callable[[], Row]]
    memory: Callable[[], list[dict]] | None
    shutdown: Callable[[], None]


def local_backend(guard: bool, photo_path: Path, photo: InputFile, n: int) -> Backend:
    from agentic_vision.sandboxing.bubblewrap import LocalExecutor

    pool = LocalExecutor(pool_size=1)
    cold = LocalExecutor(pool_size=0)
    baselines = [
        lambda: row_fresh_bwrap_print(cold, n),
        lambda: row_fresh_bwrap_crop(cold, photo_path, n),
    ]

    def shutdown():
        pool.shutdown()
        cold.shutdown()

    return Backend("local", pool, cold, baselines, lambda: measure_memory_local(cold, guard, photo), shutdown)


def docker_backend(guard: bool, photo_path: Path, photo: InputFile, n: int) -> Backend:
    if not _has_docker_module():
        raise Skip("agentic_vision.sandboxing.docker is not in this tree yet (DockerExecutor missing)")
    try:
        from agentic_vision.sandboxing import docker as docker_sandbox
    except ImportError as exc:
        raise Skip(f"agentic_vision.sandboxing.docker does not import: {exc}") from None
    problem = getattr(docker_sandbox, "docker_problem", lambda: None)()
    if problem:
        raise Skip(f"Docker is unavailable: {problem}")
    pool = docker_sandbox.DockerExecutor(pool_size=1)
    cold = docker_sandbox.DockerExecutor(pool_size=0)
    image = docker_image(docker_sandbox, pool)
    python = docker_python(docker_sandbox)
    baselines: list[Callable[[], Row]] = []
    if image:
        baselines += [
            lambda: row_docker_run_print(image, python, n),
            lambda: row_docker_run_crop(image, python, photo_path, n),
            lambda: row_docker_exec_print(image, python, n),
        ]

    def shutdown():
        for ex in (pool, cold):
            getattr(ex, "shutdown", lambda: None)()

    memory = (lambda: measure_memory_docker(cold, guard, photo)) if hasattr(cold, "spawn") else None
    return Backend("docker", pool, cold, baselines, memory, shutdown)


class Skip(Exception):
    pass


# -- the report ----------------------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[Row]) -> list[str]:
    width = max(len(r.label) for r in rows)
    lines = [f"{'':{width}}  {'n':>4}  {'median':>8}  {'p95':>8}  {'mean':>8}  {'min':>8}   (ms)"]
    group = None
    for r in rows:
        if group is not None and r.group != group:
            lines.append("")
        group = r.group
        lines.append(
            f"{r.label:{width}}  {len(r.samples_ms):>4}  {fmt_ms(r.median):>8}  {fmt_ms(r.p95):>8}  "
            f"{fmt_ms(r.mean):>8}  {fmt_ms(min(r.samples_ms)):>8}"
        )
    return lines


def ratios(results: Results) -> list[tuple[str, float, float]]:
    """(label, ratio of medians, ratio of p95s) for the pairs that exist."""
    r = results.rows
    pairs = [
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
        ("open warm / open cold", "open_warm", "open_cold"),
    ]
    return [(label, r[a].median / r[b].median, r[a].p95 / r[b].p95) for label, a, b in pairs if a in r and b in r]


def targets(results: Results) -> list[dict]:
    r = results.rows
    found = []

    def add(what, measured, target, ok):
        found.append({"target": what, "measured": measured, "goal": target, "met": ok})

    if "warm_step" in r:
        s = r["warm_step"]
        add("warm step print(1)", f"median {fmt_ms(s.median)} ms, p95 {fmt_ms(s.p95)} ms", f"<= {TARGET_STEP_MS:g} ms",
            s.median <= TARGET_STEP_MS)
        if "floor_print" in r:
            f = r["floor_print"]
            add("warm step / floor", f"{s.median / f.median:.2f}x (p95 {s.p95 / f.p95:.2f}x)",
                f"<= {TARGET_STEP_VS_FLOOR:g}x", s.median / f.median <= TARGET_STEP_VS_FLOOR)
    if "open_warm" in r:
        o = r["open_warm"]
        add("ready session (warm pool)", f"median {fmt_ms(o.median)} ms, p95 {fmt_ms(o.p95)} ms", f"<= {TARGET_OPEN_MS:g} ms",
            o.median <= TARGET_OPEN_MS)
    if "crop_first" in r and "crop_second" in r:
        a, b = r["crop_first"], r["crop_second"]
        add("2nd crop faster than 1st", f"{fmt_ms(b.median)} vs {fmt_ms(a.median)} ms ({a.median / b.median:.1f}x faster)",
            "2nd < 1st", b.median < a.median)
    return found


def report(results: Results) -> str:
    lines = [header_line(results.machine)]
    m = results.machine
    lines.append(f"sandbox: {m['sandbox']}; interpreter of the local sandbox and the floor: {m['sandbox_python']}")
    lines.append(f"photo: {m.get('photo', '?')}")
    lines.append(f"load average (1/5/15 min) at start: {m['load_avg_start']}, at end: {m.get('load_avg_end', '?')} "
                 f"on {m['cores']} cores (other work on the machine inflates every row)")
    lines.append("")
    order = ["step", "crop", "open", "baseline"]
    rows = sorted(results.rows.values(), key=lambda row: order.index(row.group) if row.group in order else 99)
    lines += table(rows)
    found = ratios(results)
    if found:
        lines.append("")
        width = max(len(label) for label, _, _ in found)
        lines.append(f"{'ratios':{width}}  {'median':>8}  {'p95':>8}")
        for label, med, p95 in found:
            lines.append(f"{label:{width}}  {med:>7.3g}x  {p95:>7.3g}x")
    goals = targets(results)
    if goals:
        lines.append("")
        width = max(len(g["target"]) for g in goals)
        mwidth = max(len(g["measured"]) for g in goals)
        lines.append(f"{'targets':{width}}  {'measured':{mwidth}}  {'goal':<10}  met")
        for g in goals:
            lines.append(f"{g['target']:{width}}  {g['measured']:{mwidth}}  {g['goal']:<10}  {'yes' if g['met'] else 'NO'}")
    if results.memory:
        lines.append("")
        if any("text" in entry for entry in results.memory):
            lines.append("memory (Docker: the container's cgroup usage)")
        else:
            lines.append("memory (RSS/PSS summed over the sandbox's processes from /proc, MiB)")
        for entry in results.memory:
            if "text" in entry:
                lines.append(f"  {entry['what']}: {entry['text']}")
                continue
            pss = "n/a" if entry["pss_mib"] is None else f"{entry['pss_mib']:.1f}"
            lines.append(f"  {entry['what']}: RSS {entry['rss_mib']:.1f}, PSS {pss}  [{entry['processes']}]")
    annotated = [row for row in rows if row.note]
    if annotated:
        lines.append("")
        for row in annotated:
            lines.append(f"* {row.label}: {row.note}")
    for note in results.notes:
        lines.append(f"note: {note}")
    for skipped in results.skipped:
        lines.append(f"skipped: {skipped}")
    return "\n".join(lines)


def as_json(results: Results) -> str:
    return json.dumps(
        {
            "machine": results.machine,
            "rows": [row.as_dict() for row in results.rows.values()],
            "ratios": [{"ratio": label, "median": med, "p95": p95} for label, med, p95 in ratios(results)],
            "targets": targets(results),
            "memory": results.memory,
            "notes": results.notes,
            "skipped": results.skipped,
        },
        indent=2,
    )


# -- main ------------------------------------------------------------------------------------------------------------


def default_guard() -> tuple[bool, str]:
    from agentic_vision.sandboxing.bubblewrap import RUNTIME_DIR

    if (RUNTIME_DIR / "guard.py").exists():
        return True, "the default"
    return False, "sandbox/guard.py is missing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20,
                        help="repetitions of each expensive row (default 20); cheap rows (a warm step, "
                             "the fork floor) take 10x as many")
    parser.add_argument("--sandbox", choices=("local", "docker"), default="local")
    parser.add_argument("--guard", action=argparse.BooleanOptionalAction, default=None,
                        help="run model code under the RestrictedPython guard (default: on when sandbox/guard.py exists)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    n = max(2, args.repeat)
    n_cheap = 10 * n

    from agentic_vision.sandboxing.bubblewrap import RUNTIME_DIR, sandbox_python

    if args.guard is None:
        guard, guard_why = default_guard()
    else:
        guard, guard_why = args.guard, "--guard" if args.guard else "--no-guard"
        if guard and not (RUNTIME_DIR / "guard.py").exists():
            parser.error("--guard: sandbox/guard.py does not exist yet")

    floor_python = str(sandbox_python())
    if not Path(floor_python).exists():
        floor_python = sys.executable
    results = Results(machine_info(args.sandbox, floor_python, guard, guard_why))
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="av-bench-") as tmp:
        photo_path, source = make_photo(Path(tmp))
        os.chmod(tmp, 0o755)  # readable from inside the sandbox's user namespace
        photo = InputFile(PHOTO_NAME, photo_path.read_bytes())
        results.machine["photo"] = (f"{source} resized to {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}, JPEG q90, "
                                    f"{len(photo.data) / 2**20:.2f} MiB; crop {CROP_W}x{CROP_H}")

        log("floor: fork of a pre-imported interpreter")
        results.add(row_floor_print(floor_python, n_cheap))
        results.add(row_floor_crop(floor_python, photo_path, n))

        make = local_backend if args.sandbox == "local" else docker_backend
        try:
            backend = make(guard, photo_path, photo, n)
        except Skip as exc:
            results.skipped.append(f"{args.sandbox} rows: {exc}")
            backend = None
        if backend is not None:
            try:
                log(f"{backend.kind}: warm per-step overhead")
                results.add(row_warm_step(backend.cold, guard, n_cheap))
                if guard:
                    results.add(row_warm_step(backend.cold, False, n_cheap, key="warm_step_noguard",
                                              label="warm step: print(1) [guard off, for comparison]"))
                log(f"{backend.kind}: crops")
                for row in rows_crops(backend.cold, guard, photo, n):
                    results.add(row)
                log(f"{backend.kind}: opening sessions")
                for row in rows_open_warm(backend.pool, guard, photo, n):
                    results.add(row)
                results.add(row_open_cold(backend.cold, guard, n))
                log(f"{backend.kind}: baselines")
                for make_row in backend.baselines:
                    results.add(make_row())
                if backend.memory is not None:
                    log(f"{backend.kind}: memory")
                    results.memory = backend.memory()
                else:
                    results.skipped.append(f"memory of a {backend.kind} worker: not measured for this sandbox")
            finally:
                backend.shutdown()
        if args.sandbox == "local":
            results.skipped.append("Docker rows: not in this run (use --sandbox docker)" if _has_docker_module()
                                   else "Docker rows: agentic_vision.sandboxing.docker is not in this tree yet")

    results.notes.append(
        "warm step = session.run() round trip on the host; crops run in a session that already ran print(1); "
        "'open' = Session() returning (acquire + init, no run); the floor runs outside any sandbox with the "
        "local sandbox's interpreter" + ("; the fresh-bwrap baselines use bwrap_argv() without the per-session "
                                         "cgroup" if args.sandbox == "local" else "")
    )
    results.notes.append(f"total benchmark time {time.perf_counter() - started:.0f} s")
    results.machine["load_avg_end"] = load_average()
    print(as_json(results) if args.json else report(results))
    return 0


def _has_docker_module() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("agentic_vision.sandboxing.docker") is not None
    except ImportError:
        return False


if __name__ == "__main__":
    from agentic_vision.errors import AgenticVisionError

    try:
        sys.exit(main())
    except (BenchError, AgenticVisionError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
