#!/usr/bin/env python
"""What preparing a huge input image costs: time and peak memory, against a plain decode.

    .venv/bin/python benchmarks/image_prep.py [--repeat N] [--json]

Makes a 100 MP photo (JPEG, 11547x8660) and a 108 MP plan (PNG, 12000x9000)
with ``agentic_vision.testing.photos``, then for each measures, in a fresh
process per measurement (so that peak RSS is that of the work alone):

- ``prepare``: ``prepare_image`` as the loop calls it (the checked input for
  the sandbox and the 1536-px view for the model);
- ``baseline``: the plain way, ``Image.open(...).convert("RGB")`` then
  ``resize`` to the same size, a full-size decode.

It prints the median time and the peak RSS of the work (the high-water mark
is reset after the imports, then read back: Linux only) of each, and the
ratios prepare/baseline.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
from PIL import Image
from agentic_vision.inputs import prepare_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])  # KiB

what, path = sys.argv[1], sys.argv[2]
# The imports' own peak must not count: reset the high-water mark (Linux >= 4.0).
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS")
t = time.perf_counter()
if what == "prepare":
    view = prepare_image(path, max_side=1536, max_pixels=200_000_000).model
    size = (view.width, view.height)
elif what == "baseline":
    Image.MAX_IMAGE_PIXELS = None
    img = Image.open(path).convert("RGB")
    scale = 1536 / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    size = img.size
else:
    size = None
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "peak_kib": status("VmHWM"), "base_kib": base, "size": size}))
"""

CASES = [("100 MP JPEG", "photo.jpg", (11547, 8660)), ("108 MP PNG", "plan.png", (12000, 9000))]


def make_inputs(directory: Path) -> dict[str, Path]:
    from agentic_vision.testing.photos import photo, plan

    paths = {}
    for label, name, (w, h) in CASES:
        path = directory / name
        print(f"making {label} ({w}x{h}) ...", file=sys.stderr)
        img = photo(w, h) if name.endswith(".jpg") else plan(w, h)
        img.save(path, **({"quality": 90} if name.endswith(".jpg") else {"compress_level": 1}))
        del img
        paths[name] = path
    return paths


def measure(what: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, what, str(path)], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentic-vision-bench-") as tmp:
        paths = make_inputs(Path(tmp))
        for label, name, size in CASES:
            row = {"case": label, "file_mb": round(paths[name].stat().st_size / 1e6, 1)}
            for what in ("prepare", "baseline"):
                runs = []
                for i in range(args.repeat):
                    print(f"{label}: {what} {i + 1}/{args.repeat}", file=sys.stderr)
                    runs.append(measure(what, paths[name]))
                row[f"{what}_s"] = round(statistics.median(r["seconds"] for r in runs), 3)
                row[f"{what}_peak_mb"] = round(statistics.median((r["peak_kib"] - r["base_kib"]) / 1024 for r in runs))
                row[f"{what}_size"] = runs[0]["size"]
            row["time_ratio"] = round(row["prepare_s"] / row["baseline_s"], 2)
            row["memory_ratio"] = round(row["prepare_peak_mb"] / max(1, row["baseline_peak_mb"]), 2)
            rows.append(row)
    if args.json:
        print(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "rows": rows}, indent=2))
        return
    print(f"{'case':<12} {'file':>8} {'prepare':>9} {'baseline':>9} {'ratio':>6}   "
          f"{'peak RSS':>9} {'baseline':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['case']:<12} {r['file_mb']:>6} MB {r['prepare_s']:>7.2f} s {r['baseline_s']:>7.2f} s "
              f"{r['time_ratio']:>6.2f}   {r['prepare_peak_mb']:>6} MB {r['baseline_peak_mb']:>6} MB {r['memory_ratio']:>6.2f}")
    print(f"({os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}; "
          "peak RSS of the work alone; median of runs)")


if __name__ == "__main__":
    main()
