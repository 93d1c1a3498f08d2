#!/usr/bin/env python
"""What tracking where images came from (sandbox/provenance.py) costs model code.

    .venv/bin/python benchmarks/provenance_overhead.py [--repeat N]

Runs the same workloads in two fresh processes, one with the hooks installed
(as the sandbox's interpreter does) and one without, on a real photograph, and
prints each workload's median time with and without and their ratio:

* a zoom chain: open the input, crop, resize, np.asarray, slice, cv2.resize,
  Image.fromarray (everything tracked);
* 20 000 small ``np.asarray``/``np.array`` calls on lists (code that never
  touches an input image pays the wrapper only);
* a matplotlib figure drawn to PNG (matplotlib calls ``np.asarray`` often).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKLOADS = r'''
import io, json, os, sys, time
sys.path.insert(0, SANDBOX)
if HOOKS:
    import provenance
    provenance.install(["photo.jpg"])
import numpy as np, cv2
from PIL import Image
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

def chain():
    im = Image.open("photo.jpg")
    crop = im.crop((100, 50, 400, 300)).resize((600, 500))
    a = np.asarray(crop)[50:450, 100:500]
    big = cv2.resize(a, None, fx=2, fy=2)
    Image.fromarray(big).convert("L")

def small_arrays():
    for i in range(10_000):
        np.asarray([i, i + 1])
        np.array([[i]])

def figure():
    fig = plt.figure()
    plt.plot(np.arange(500), np.sin(np.arange(500) / 20))
    plt.imshow(np.zeros((50, 50)))
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)

out = {}
for name, fn in [("zoom chain", chain), ("20 000 small np.asarray/np.array", small_arrays), ("matplotlib figure", figure)]:
    fn()
    times = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    out[name] = times
print(json.dumps(out))
'''


def run(hooks: bool, repeat: int, workdir: Path) -> dict:
    code = (f"SANDBOX = {str(ROOT / 'sandbox')!r}\nHOOKS = {hooks}\nREPEAT = {repeat}\n") + WORKLOADS
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    import skimage.data

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copy(Path(skimage.data.__file__).parent / "rocket.jpg", workdir / "photo.jpg")
        without = run(False, args.repeat, workdir)
        with_hooks = run(True, args.repeat, workdir)
    print(f"{'workload':36} {'without':>10} {'with hooks':>11} {'ratio':>7}")
    for name in without:
        a, b = statistics.median(without[name]), statistics.median(with_hooks[name])
        print(f"{name:36} {a * 1000:8.2f} ms {b * 1000:8.2f} ms {b / a:6.2f}×")


if __name__ == "__main__":
    main()
