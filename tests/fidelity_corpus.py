"""Programs written the way vision models write code-execution code.

Each runs in a session whose working directory holds ``photo.jpg`` (a
photograph), ``coins.png`` (a grayscale scan) and ``sales.csv``.  They
follow the hosted documentation's examples and what PyVision-, Thyme- and
VisualSketchpad-style prompts produce: crop/zoom/rotate/annotate with PIL,
cv2 pipelines, numpy/scipy/sklearn on pixels, matplotlib/seaborn figures,
pandas, sympy, tabulate, classes, closures, stdout and stderr, sys.exit.
Their output must not depend on addresses, timings or the network.

``EXPECTED_FAILED``: programs that fail on purpose (a non-zero exit, an
error the model would see); every other program must succeed.
"""

from __future__ import annotations

import textwrap

SALES_CSV = """region,month,units,price
north,2024-01,120,9.5
north,2024-02,135,9.5
south,2024-01,80,11.0
south,2024-02,95,10.5
east,2024-01,60,12.0
east,2024-02,70,12.0
west,2024-01,150,8.0
west,2024-02,160,8.25
"""

_PROGRAMS = {
    # -- PIL: crop, zoom, rotate, annotate -------------------------------------------------
    "pil_crop_zoom": """
        from PIL import Image
        img = Image.open("photo.jpg")
        print(f"Image size: {img.size}, mode: {img.mode}")
        w, h = img.size
        crop = img.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        zoomed = crop.resize((crop.width * 2, crop.height * 2), Image.LANCZOS)
        zoomed.show()
        print("Zoomed:", zoomed.size)
    """,
    "pil_rotate_flip": """
        from PIL import Image, ImageOps
        img = Image.open("photo.jpg")
        rotated = img.rotate(90, expand=True)
        flipped = ImageOps.mirror(img)
        gray = ImageOps.grayscale(img)
        print(rotated.size, flipped.size, gray.mode)
        display(rotated)
    """,
    "pil_annotate_boxes": """
        from PIL import Image, ImageDraw, ImageFont
        img = Image.open("photo.jpg").convert("RGB")
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default()
        boxes = [(10, 10, 120, 90, "top-left"), (150, 40, 260, 160, "object")]
        for x0, y0, x1, y1, label in boxes:
            draw.rectangle([x0, y0, x1, y1], outline="red", width=3)
            draw.text((x0 + 4, y0 + 4), label, fill="yellow", font=font)
        img.save("annotated.png")
        print(f"Drew {len(boxes)} boxes")
    """,
    "pil_grid_overlay": """
        from PIL import Image, ImageDraw
        img = Image.open("photo.jpg").convert("RGB")
        draw = ImageDraw.Draw(img)
        step = img.width // 4
        for x in range(0, img.width, step):
            draw.line([(x, 0), (x, img.height)], fill=(0, 255, 0), width=1)
        for y in range(0, img.height, step):
            draw.line([(0, y), (img.width, y)], fill=(0, 255, 0), width=1)
        img.show()
    """,
    "pil_tiles": """
        from PIL import Image
        img = Image.open("photo.jpg")
        tiles = []
        for i in range(2):
            for j in range(2):
                box = (j * img.width // 2, i * img.height // 2, (j + 1) * img.width // 2, (i + 1) * img.height // 2)
                tiles.append(img.crop(box))
        for k, t in enumerate(tiles):
            print(k, t.size)
        display(*tiles[:2])
    """,
    "pil_enhance": """
        from PIL import Image, ImageEnhance, ImageFilter
        img = Image.open("photo.jpg")
        sharp = ImageEnhance.Sharpness(img).enhance(2.0)
        bright = ImageEnhance.Brightness(sharp).enhance(1.3)
        edges = img.convert("L").filter(ImageFilter.FIND_EDGES)
        print(bright.size, edges.getextrema())
        edges.save("edges.png")
    """,
    "pil_histogram": """
        from PIL import Image
        img = Image.open("photo.jpg").convert("L")
        hist = img.histogram()
        print("pixels:", sum(hist), "darkest bin with data:", next(i for i, v in enumerate(hist) if v))
    """,
    "pil_bytesio_base64": """
        import io, base64
        from PIL import Image
        img = Image.open("photo.jpg")
        buf = io.BytesIO()
        img.resize((64, 48)).save(buf, format="PNG")
        encoded = base64.b64encode(buf.getvalue()).decode()
        back = Image.open(io.BytesIO(base64.b64decode(encoded)))
        print(len(encoded) > 100, back.size, back.format)
    """,
    # -- cv2 -------------------------------------------------------------------------------
    "cv2_contours": """
        import cv2
        import numpy as np
        img = cv2.imread("coins.png", cv2.IMREAD_GRAYSCALE)
        blur = cv2.GaussianBlur(img, (5, 5), 0)
        _, th = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        contours, _ = cv2.findContours(th, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        big = [c for c in contours if cv2.contourArea(c) > 200]
        print("Found", len(big), "objects")
        vis = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        cv2.drawContours(vis, big, -1, (0, 0, 255), 2)
        cv2.imwrite("contours.png", vis)
    """,
    "cv2_edges_hough": """
        import cv2
        import numpy as np
        img = cv2.imread("photo.jpg")
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        edges = cv2.Canny(gray, 50, 150)
        lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=80, minLineLength=30, maxLineGap=5)
        n = 0 if lines is None else len(lines)
        print("edge pixels:", int((edges > 0).sum()), "lines:", n)
        cv2.imshow("edges", edges)
        cv2.waitKey(0)
        cv2.destroyAllWindows()
    """,
    "cv2_hsv_mask": """
        import cv2
        import numpy as np
        img = cv2.imread("photo.jpg")
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        mask = cv2.inRange(hsv, np.array([0, 50, 50]), np.array([20, 255, 255]))
        ratio = mask.mean() / 255
        print(f"red-ish fraction: {ratio:.4f}")
        result = cv2.bitwise_and(img, img, mask=mask)
        cv2.imwrite("mask.jpg", result)
    """,
    "cv2_connected_components": """
        import cv2
        img = cv2.imread("coins.png", 0)
        _, th = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        th = cv2.morphologyEx(th, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(th)
        areas = sorted(int(a) for a in stats[1:, cv2.CC_STAT_AREA] if a > 100)
        print(len(areas), areas[:5])
    """,
    "cv2_resize_rotate": """
        import cv2
        img = cv2.imread("photo.jpg")
        h, w = img.shape[:2]
        M = cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0)
        rotated = cv2.warpAffine(img, M, (w, h))
        small = cv2.resize(rotated, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        print(small.shape, small.dtype)
        cv2.imwrite("rotated.png", small)
    """,
    "cv2_template_match": """
        import cv2
        import numpy as np
        img = cv2.imread("coins.png", 0)
        template = img[100:140, 100:140].copy()
        res = cv2.matchTemplate(img, template, cv2.TM_CCOEFF_NORMED)
        _, max_val, _, max_loc = cv2.minMaxLoc(res)
        print(round(float(max_val), 3), max_loc)
    """,
    # -- numpy / scipy / sklearn -----------------------------------------------------------
    "numpy_stats": """
        import numpy as np
        from PIL import Image
        arr = np.array(Image.open("photo.jpg"))
        print("shape", arr.shape, "dtype", arr.dtype)
        means = arr.reshape(-1, 3).mean(axis=0)
        print("mean RGB:", np.round(means, 2).tolist())
        print("brightest row:", int(arr.sum(axis=(1, 2)).argmax()))
    """,
    "numpy_mask_count": """
        import numpy as np
        from PIL import Image
        g = np.asarray(Image.open("coins.png").convert("L"), dtype=np.float32)
        mask = g > g.mean() + g.std()
        print(f"{mask.sum()} bright pixels of {mask.size} ({100 * mask.mean():.1f}%)")
        ys, xs = np.nonzero(mask)
        print("bbox:", xs.min(), ys.min(), xs.max(), ys.max())
    """,
    "numpy_inplace_views": """
        import numpy as np
        a = np.arange(12).reshape(3, 4)
        v = a[1]
        a += 1
        v *= 10
        a[:, 0] -= 1
        print(a.tolist())
    """,
    "scipy_label": """
        import numpy as np
        from scipy import ndimage
        from PIL import Image
        g = np.array(Image.open("coins.png"))
        binary = ndimage.binary_opening(g > 120, iterations=2)
        labels, n = ndimage.label(binary)
        sizes = ndimage.sum(binary, labels, range(1, n + 1))
        print("components:", n, "large:", int((sizes > 200).sum()))
        com = ndimage.center_of_mass(binary, labels, [1])
        print(np.round(com, 1).tolist())
    """,
    "scipy_signal_peaks": """
        import numpy as np
        from scipy.signal import find_peaks
        from PIL import Image
        g = np.array(Image.open("coins.png"), dtype=float)
        profile = g.mean(axis=0)
        peaks, _ = find_peaks(profile, distance=20, prominence=5)
        print("peaks along x:", len(peaks))
    """,
    "sklearn_kmeans_colors": """
        import numpy as np
        from sklearn.cluster import KMeans
        from PIL import Image
        img = Image.open("photo.jpg").resize((80, 60))
        pixels = np.array(img).reshape(-1, 3).astype(float)
        km = KMeans(n_clusters=3, n_init=4, random_state=0).fit(pixels)
        counts = np.bincount(km.labels_)
        order = np.argsort(-counts)
        for i in order:
            print(tuple(int(c) for c in km.cluster_centers_[i]), int(counts[i]))
    """,
    "sklearn_regression": """
        import numpy as np
        from sklearn.linear_model import LinearRegression
        x = np.arange(10).reshape(-1, 1)
        y = 3 * x.ravel() + 2
        model = LinearRegression().fit(x, y)
        print(round(float(model.coef_[0]), 3), round(float(model.intercept_), 3))
    """,
    # -- matplotlib / seaborn --------------------------------------------------------------
    "mpl_image_with_boxes": """
        import matplotlib.pyplot as plt
        import matplotlib.patches as patches
        from PIL import Image
        img = Image.open("photo.jpg")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.imshow(img)
        for (x, y, w, h) in [(20, 30, 80, 60), (150, 100, 60, 90)]:
            ax.add_patch(patches.Rectangle((x, y), w, h, linewidth=2, edgecolor="r", facecolor="none"))
        ax.set_title("Detections")
        ax.axis("off")
        plt.show()
    """,
    "mpl_histogram": """
        import numpy as np
        import matplotlib.pyplot as plt
        from PIL import Image
        arr = np.array(Image.open("photo.jpg"))
        fig, ax = plt.subplots()
        for i, c in enumerate("rgb"):
            ax.hist(arr[..., i].ravel(), bins=32, color=c, alpha=0.5, label=c)
        ax.legend()
        plt.tight_layout()
        plt.savefig("hist.png", dpi=60)
        plt.close()
        print("saved")
    """,
    "mpl_subplots_side_by_side": """
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from PIL import Image, ImageOps
        img = Image.open("photo.jpg")
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        axes[0].imshow(img); axes[0].set_title("original")
        axes[1].imshow(ImageOps.grayscale(img), cmap="gray"); axes[1].set_title("gray")
        for a in axes:
            a.axis("off")
    """,
    "mpl_line_chart": """
        import matplotlib.pyplot as plt
        xs = list(range(1, 8))
        ys = [x ** 2 for x in xs]
        plt.figure(figsize=(4, 3))
        plt.plot(xs, ys, marker="o")
        plt.xlabel("x"); plt.ylabel("x squared"); plt.grid(True)
        plt.show()
        print(max(ys))
    """,
    "seaborn_bar": """
        import pandas as pd
        import seaborn as sns
        import matplotlib.pyplot as plt
        df = pd.read_csv("sales.csv")
        totals = df.groupby("region", as_index=False)["units"].sum()
        ax = sns.barplot(data=totals, x="region", y="units")
        ax.set_title("Units by region")
        plt.show()
        print(totals.to_string(index=False))
    """,
    "seaborn_heatmap": """
        import numpy as np
        import seaborn as sns
        import matplotlib.pyplot as plt
        rng = np.random.default_rng(0)
        data = rng.integers(0, 10, size=(4, 5))
        sns.heatmap(data, annot=True, fmt="d", cmap="viridis")
        plt.title("counts")
        print(data.sum())
    """,
    # -- pandas ----------------------------------------------------------------------------
    "pandas_csv_groupby": """
        import pandas as pd
        df = pd.read_csv("sales.csv")
        df["revenue"] = df["units"] * df["price"]
        summary = df.groupby("region")["revenue"].agg(["sum", "mean"]).round(2)
        print(summary)
        print("best:", summary["sum"].idxmax())
    """,
    "pandas_xlsx_roundtrip": """
        import pandas as pd
        df = pd.read_csv("sales.csv")
        df.to_excel("sales.xlsx", index=False, sheet_name="data")
        back = pd.read_excel("sales.xlsx", sheet_name="data")
        print(back.shape, list(back.columns))
        print(back.pivot_table(index="region", columns="month", values="units"))
    """,
    "pandas_describe_query": """
        import pandas as pd
        df = pd.read_csv("sales.csv", parse_dates=["month"])
        print(df.describe().loc[["mean", "max"]].round(2))
        print(df[df.units > 100][["region", "units"]].to_string(index=False))
        print(df["month"].dt.month.value_counts().sort_index().to_dict())
    """,
    # -- sympy, tabulate, math -------------------------------------------------------------
    "sympy_solve": """
        import sympy as sp
        x, y = sp.symbols("x y")
        sol = sp.solve([x + y - 10, x - y - 2], [x, y])
        print(sol)
        print(sp.integrate(x ** 2, (x, 0, 3)), sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2))
    """,
    "tabulate_table": """
        from tabulate import tabulate
        rows = [["coin", 24, 0.93], ["rocket", 1, 0.88]]
        print(tabulate(rows, headers=["object", "count", "score"], tablefmt="github"))
    """,
    "visual_math_angles": """
        import math
        p1, p2, p3 = (10, 10), (60, 10), (60, 50)
        def angle(a, b, c):
            ab = (a[0] - b[0], a[1] - b[1]); cb = (c[0] - b[0], c[1] - b[1])
            cos = (ab[0] * cb[0] + ab[1] * cb[1]) / (math.hypot(*ab) * math.hypot(*cb))
            return math.degrees(math.acos(cos))
        print(f"angle at p2: {angle(p1, p2, p3):.1f} degrees")
        print("distance:", round(math.dist(p1, p3), 2))
    """,
    # -- sys, logging, inspect, platform and the rest of the standard library --------------
    "sys_stderr_version": """
        import sys
        print("python", sys.version_info.major, sys.version_info >= (3, 8))
        print("progress...", file=sys.stderr)
        sys.stdout.write("written directly\\n")
        sys.stdout.flush()
        print(sys.platform, sys.maxsize > 2 ** 32, sys.getsizeof([]) > 0, type(sys.argv).__name__)
    """,
    "sys_exit_zero_after_result": """
        import sys
        from PIL import Image
        img = Image.open("photo.jpg")
        print("width", img.width)
        sys.exit(0)
        print("not reached")
    """,
    "sys_exit_bare": """
        import sys
        print("done")
        sys.exit()
    """,
    "raise_systemexit": """
        print("finished")
        raise SystemExit
    """,
    "exit_builtin": """
        print("bye")
        exit()
    """,
    "sys_exit_nonzero": """
        import sys
        print("checking")
        sys.exit(2)
    """,
    "sys_exit_message": """
        import sys
        sys.exit("no objects found")
    """,
    "sys_recursion_and_redirect": """
        import sys, io, contextlib
        sys.setrecursionlimit(5000)
        def depth(n):
            return 0 if n == 0 else 1 + depth(n - 1)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            print("captured", depth(2000))
        old = sys.stdout
        sys.stdout = io.StringIO()
        print("hidden")
        sys.stdout = old
        print("got:", buf.getvalue().strip(), sys.getrecursionlimit())
    """,
    "logging_basic": """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s", force=True)
        log = logging.getLogger("vision")
        log.info("loaded %d images", 2)
        log.debug("hidden")
        log.warning("low contrast")
    """,
    "inspect_signature": """
        import inspect
        from PIL import Image
        def analyze(path: str, threshold: float = 0.5, *, verbose=False):
            '''Analyze an image.'''
            return path
        sig = inspect.signature(analyze)
        print(sig, list(sig.parameters))
        print(inspect.getdoc(analyze), inspect.isfunction(analyze), inspect.isclass(Image.Image))
        methods = [n for n, _ in inspect.getmembers(Image.Image, inspect.isfunction) if n in ("crop", "resize", "rotate")]
        print(methods)
    """,
    "platform_info": """
        import platform
        print(platform.python_version().count(".") == 2, platform.system(), bool(platform.machine()))
    """,
    "type_names_and_dunders": """
        import numpy as np
        from PIL import Image
        img = Image.open("photo.jpg")
        arr = np.zeros((2, 2))
        print(type(img).__name__, img.__class__.__name__, arr.__class__.__name__, type(arr).__module__)
        print(np.__version__.count(".") >= 1, Image.Image.__name__, Image.open.__doc__ is not None)
        class Box:
            '''A box.'''
            def __init__(self, x, y):
                self.x, self.y = x, y
        b = Box(1, 2)
        print(b.__dict__, Box.__doc__, Box.__name__, b.__class__.__qualname__, sorted(vars(b)))
        print([k for k in Box.__dict__ if not k.startswith("__")], Box.__mro__[-1].__name__)
    """,
    "dunder_methods_own_classes": """
        class Vec:
            __slots__ = ("x", "y")
            def __init__(self, x, y):
                self.x, self.y = x, y
            def __add__(self, o):
                return Vec(self.x + o.x, self.y + o.y)
            def __eq__(self, o):
                return (self.x, self.y) == (o.x, o.y)
            def __hash__(self):
                return hash((self.x, self.y))
            def __repr__(self):
                return f"Vec({self.x}, {self.y})"
            def __getattr__(self, name):
                if name == "norm":
                    return (self.x ** 2 + self.y ** 2) ** 0.5
                raise AttributeError(name)
            def __iter__(self):
                yield self.x; yield self.y
        v = Vec(3, 4) + Vec(0, 0)
        print(v, v.norm, list(v), v == Vec(3, 4), len({v, Vec(3, 4)}), v.__repr__())
    """,
    "pickle_roundtrip": """
        import pickle
        import numpy as np
        data = {"boxes": [(1, 2, 3, 4)], "scores": np.array([0.5, 0.9]), "name": "run"}
        blob = pickle.dumps(data)
        with open("state.pkl", "wb") as f:
            pickle.dump(data, f)
        with open("state.pkl", "rb") as f:
            back = pickle.load(f)
        print(pickle.loads(blob)["boxes"], back["scores"].tolist(), back["name"])
    """,
    "dataclasses_typing_enum": """
        from dataclasses import dataclass, field, asdict
        from enum import Enum, auto
        from typing import List, Optional, NamedTuple
        class Kind(Enum):
            COIN = auto()
            NOTE = auto()
        class Point(NamedTuple):
            x: int
            y: int
        @dataclass
        class Detection:
            kind: Kind
            box: tuple
            score: float = 0.0
            tags: List[str] = field(default_factory=list)
            parent: Optional["Detection"] = None
        d = Detection(Kind.COIN, (1, 2, 3, 4), 0.9, ["round"])
        print(d.kind.name, asdict(d)["box"], Point(1, 2)._asdict(), Kind["NOTE"].value)
    """,
    "abc_copy_pprint": """
        import abc, copy, pprint
        class Shape(abc.ABC):
            @abc.abstractmethod
            def area(self): ...
        class Sq(Shape):
            def __init__(self, s): self.s = s
            def area(self): return self.s ** 2
        try:
            Shape()
        except TypeError as e:
            print("abstract:", type(e).__name__)
        a = {"shapes": [Sq(2)], "meta": {"k": [1, 2]}}
        b = copy.deepcopy(a)
        b["meta"]["k"].append(3)
        pprint.pprint({"a": a["meta"], "b": b["meta"], "area": b["shapes"][0].area()})
    """,
    "timeit_types_weakref": """
        import timeit, types, weakref
        n = timeit.timeit("sum(range(100))", number=10)
        m = timeit.timeit(lambda: sorted([3, 1, 2]), number=10)
        ns = types.SimpleNamespace(a=1, b=2)
        class Node: pass
        node = Node()
        ref = weakref.ref(node)
        print(n >= 0, m >= 0, ns.a + ns.b, ref() is node, isinstance(len, types.BuiltinFunctionType))
    """,
    "threading_pool": """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        import numpy as np
        results = {}
        lock = threading.Lock()
        def work(i):
            v = int(np.arange(i * 1000).sum())
            with lock:
                results[i] = v
            return v
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        with ThreadPoolExecutor(max_workers=3) as pool:
            out = list(pool.map(work, range(4)))
        print(sorted(results.items()), out, threading.current_thread().name)
    """,
    "globals_checks": """
        if "cached_value" not in globals():
            cached_value = 41
        globals()["cached_value"] += 1
        def f():
            local_x = 1
            return sorted(k for k in locals())
        print(cached_value, f(), "f" in globals(), vars().get("cached_value"))
    """,
    "star_import_math": """
        from math import *
        print(round(sqrt(2), 4), floor(pi), gcd(12, 18))
    """,
    "traceback_handled": """
        import traceback
        def risky():
            return [1, 2][5]
        try:
            risky()
        except IndexError as exc:
            print("caught", type(exc).__name__, exc)
            lines = traceback.format_exception_only(type(exc), exc)
            print(lines[-1].strip())
    """,
    "os_files_env": """
        import os, glob, json, shutil, tempfile
        from pathlib import Path
        os.makedirs("out/crops", exist_ok=True)
        Path("out/crops/a.txt").write_text("x")
        print(sorted(glob.glob("*.png") + glob.glob("*.jpg")))
        print(sorted(os.listdir("out/crops")), os.path.getsize("sales.csv") > 0)
        print(os.environ.get("NOT_SET_HERE", "default"), os.getenv("ALSO_NOT_SET") is None)
        with tempfile.TemporaryDirectory() as d:
            shutil.copy("sales.csv", d)
            print(os.listdir(d))
        print(json.dumps({"ok": True}))
    """,
    # -- program shapes ----------------------------------------------------------------------
    "main_guard_functions": """
        from PIL import Image
        import numpy as np

        def load(path):
            return np.array(Image.open(path).convert("L"))

        def count_bright(arr, thr=150):
            return int((arr > thr).sum())

        def main():
            arr = load("coins.png")
            print("bright pixels:", count_bright(arr))

        if __name__ == "__main__":
            main()
    """,
    "closures_global_nonlocal": """
        counter = 0
        def bump():
            global counter
            counter += 1
        def make_acc():
            total = 0
            def add(v):
                nonlocal total
                total += v
                return total
            return add
        acc = make_acc()
        for v in (1, 2, 3):
            acc(v); bump()
        print(counter, acc(0))
    """,
    "class_pipeline": """
        import numpy as np
        from PIL import Image
        class Pipeline:
            steps = []
            def __init__(self, path):
                self.img = Image.open(path)
                self.log = []
            def step(self, name):
                def deco(fn):
                    Pipeline.steps.append((name, fn))
                    return fn
                return deco
            def run(self):
                out = self.img
                for name, fn in self.steps:
                    out = fn(out)
                    self.log.append(f"{name}: {out.size}")
                return out
        p = Pipeline("photo.jpg")
        @p.step("half")
        def half(im):
            return im.resize((im.width // 2, im.height // 2))
        @p.step("gray")
        def gray(im):
            return im.convert("L")
        result = p.run()
        print("\\n".join(p.log), result.mode, repr(p).startswith("<"))
    """,
    "generators_comprehensions": """
        def windows(seq, n):
            for i in range(len(seq) - n + 1):
                yield seq[i:i + n]
        data = [3, 1, 4, 1, 5, 9, 2, 6]
        print([sum(w) for w in windows(data, 3)])
        print({k: v for k, v in zip("abc", range(3))}, sorted({x % 3 for x in data}))
        first, *middle, last = data
        print(first, middle, last, max(data, key=lambda x: -x))
    """,
    "exceptions_custom": """
        class DetectionError(Exception):
            def __init__(self, msg, box=None):
                super().__init__(msg)
                self.box = box
        try:
            raise DetectionError("too small", box=(0, 0, 1, 1))
        except DetectionError as e:
            print("error:", e, e.box, e.args)
        finally:
            print("cleanup")
    """,
    "uncaught_error": """
        from PIL import Image
        img = Image.open("photo.jpg")
        print("opened", img.size)
        img.crop((0, 0, 10))
    """,
    "missing_file_error": """
        import pandas as pd
        df = pd.read_csv("does_not_exist.csv")
    """,
    "str_format_attrs": """
        from PIL import Image
        img = Image.open("photo.jpg")
        print("{0.width}x{0.height} {0.mode} {1}".format(img, img.__class__.__name__))
        print("{im.size[0]}".format(im=img), f"{img.format!r:>8}")
        print("%(n)d items" % {"n": 3})
    """,
    "json_csv_stdlib": """
        import csv, json, statistics, collections, itertools, re
        with open("sales.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        units = [int(r["units"]) for r in rows]
        by_region = collections.defaultdict(int)
        for r in rows:
            by_region[r["region"]] += int(r["units"])
        print(statistics.mean(units), statistics.median(units), dict(by_region))
        print(json.dumps(sorted(by_region.items(), key=lambda kv: -kv[1])[:2]))
        print([m for m in re.findall(r"\\d{4}-\\d{2}", open("sales.csv").read())][:3])
        print(list(itertools.accumulate(units))[-1])
    """,
    "operator_functools": """
        import functools, operator
        items = [{"n": "a", "s": 3}, {"n": "b", "s": 1}]
        print(sorted(items, key=operator.itemgetter("s"))[0]["n"])
        class P:
            def __init__(self, v): self.v = v
        print([p.v for p in sorted([P(2), P(1)], key=operator.attrgetter("v"))])
        print(functools.reduce(operator.mul, range(1, 6)))
        @functools.lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        print(fib(30), fib.cache_info().hits > 0)
    """,
    "gc_and_warnings": """
        import gc, warnings
        gc.collect()
        print(isinstance(gc.get_count(), tuple))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn("careful")
        print(len(caught), str(caught[0].message))
    """,
    "pillow_numpy_roundtrip_multi_output": """
        import numpy as np
        from PIL import Image
        arr = np.array(Image.open("photo.jpg"))
        inverted = Image.fromarray(255 - arr)
        channels = [Image.fromarray(arr[..., i]) for i in range(3)]
        inverted.save("inverted.png")
        for i, ch in enumerate(channels):
            ch.save(f"channel_{i}.png")
        print("wrote", 1 + len(channels), "images")
    """,
    "pdf_report_fpdf": """
        from fpdf import FPDF
        pdf = FPDF()
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.cell(0, 10, "Detection report")
        pdf.output("report.pdf")
        import os
        print(os.path.getsize("report.pdf") > 500)
    """,
    "jinja2_template": """
        from jinja2 import Template
        t = Template("{% for d in dets %}{{ d.name }}={{ '%.1f' % d.score }} {% endfor %}")
        class D:
            def __init__(self, name, score): self.name, self.score = name, score
        print(t.render(dets=[D("coin", 0.91), D("note", 0.5)]).strip())
    """,
    "imageio_read": """
        import imageio.v3 as iio
        img = iio.imread("coins.png")
        print(img.shape, img.dtype, int(img.max()))
    """,
}

PROGRAMS = {name: textwrap.dedent(code).lstrip("\n") for name, code in _PROGRAMS.items()}

EXPECTED_FAILED = {"sys_exit_nonzero", "sys_exit_message", "uncaught_error", "missing_file_error"}
