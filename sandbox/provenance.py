"""Where a shown image came from: its region of an input, tracked inside the sandbox.

An image or array taken from an input file carries an affine map from its
own pixel coordinates to the input's (``M`` = (a, b, c, d, e, f):
x_in = a*x + b*y + c, y_in = d*x + e*y + f) and the input-space quad its
content is limited to.  The usual chains keep it up to date: PIL's crop,
resize, reduce, thumbnail, rotate/transform, transpose and everything built on
``_new`` (convert, copy, filter, point, ImageOps); ``np.array``/``np.asarray``
of an image, numpy views (found by their offset into the tracked array),
``Image.fromarray``, cv2's imread, resize, rotate, flip, warpAffine and
same-size filters; saved files.  ImageDraw draws in place, so an annotated
crop keeps the crop's map.

Every hook calls the original first and only then, inside ``try``, records;
a failure to track is a missing source (the host then tries to match the
image), never an error in model code.  The host treats what comes from here
as untrusted and checks it against the inputs.
"""

from __future__ import annotations

import math
import os
import weakref

KEY = "_agentic_vision_source"  # attribute on PIL images; underscored, so the guard hides it
MAX_ARRAYS = 4096  # tracked numpy arrays (weakly held); beyond this new ones go untracked
MAX_SAVED = 256


class Tracker:
    def __init__(self) -> None:
        self.inputs: set[str] = set()  # absolute paths of the input files
        self.arrays: dict[int, tuple] = {}  # id -> (weakref, pointer, row stride, col stride, prov)
        self.saved: dict[str, tuple] = {}  # absolute path -> (file signature, prov)

    # -- provenance values ----------------------------------------------------------
    # prov = (input name, M, limit quad): limit is where in the input the content can be.

    def input_prov(self, path, size):
        w, h = size
        quad = ((0.0, 0.0), (float(w), 0.0), (float(w), float(h)), (0.0, float(h)))
        return (os.path.basename(path), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), quad)

    def is_input(self, fp) -> str | None:
        if isinstance(fp, (str, os.PathLike)):
            full = os.path.abspath(os.fspath(fp))
            if full in self.inputs:
                return full
        return None

    # -- numpy arrays ---------------------------------------------------------------

    def register(self, arr, prov) -> None:
        if prov is None or len(self.arrays) >= MAX_ARRAYS or getattr(arr, "ndim", 0) < 2:
            return
        key = id(arr)
        ref = weakref.ref(arr, lambda _r, key=key, arrays=self.arrays: arrays.pop(key, None))
        self.arrays[key] = (ref, arr.__array_interface__["data"][0], arr.strides[0], arr.strides[1], prov)

    def array_prov(self, arr):
        if not self.arrays:
            return None
        node = arr
        for _ in range(4):
            entry = self.arrays.get(id(node))
            if entry is not None and entry[0]() is node:
                return view_prov(arr, entry)
            node = getattr(node, "base", None)
            if node is None:
                return None
        return None

    def of(self, obj):
        """The provenance of a PIL image or numpy array, or None."""
        try:
            d = getattr(obj, "__dict__", None)
            if d is not None and KEY in d:
                return d[KEY]
            if hasattr(obj, "__array_interface__") and type(obj).__module__ == "numpy":
                return self.array_prov(obj)
        except Exception:
            return None
        return None

    def source(self, obj, size=None):
        """What goes to the host for a shown object: a JSON-able dict or None (never an error)."""
        try:
            return describe(self.of(obj), size or shape_size(obj))
        except Exception:  # a map made unusable (by model code, say): no source, the image still goes
            return None

    def file_source(self, path):
        try:
            entry = self.saved.pop(os.path.abspath(path), None)
            if entry is None:
                return None
            signature, prov, size = entry
            return describe(prov, size) if signature == file_signature(path) else None
        except Exception:
            return None

    def remember_file(self, path, prov, size) -> None:
        if prov is None or not isinstance(path, (str, os.PathLike)):
            return
        if len(self.saved) >= MAX_SAVED:
            self.saved.pop(next(iter(self.saved)))
        full = os.path.abspath(os.fspath(path))
        self.saved[full] = (file_signature(full), prov, size)


def file_signature(path):
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def shape_size(obj):
    size = getattr(obj, "size", None)
    if isinstance(size, tuple) and len(size) == 2:
        return size
    shape = getattr(obj, "shape", None)
    if shape is not None and len(shape) >= 2:
        return (shape[1], shape[0])
    return None


# -- geometry ----------------------------------------------------------------------------


def compose(m, n):
    """m after n: first n maps the new image into the old one, then m into the input."""
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return (a * p + b * s, a * q + b * t, a * r + b * u + c, d * p + e * s, d * q + e * t, d * r + e * u + f)


def apply(m, x, y):
    return (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5])


def derived(prov, n, parent_size=None):
    """The provenance of an image whose pixels map into the parent's by ``n``.

    With ``parent_size`` (warps, rotations) what lies outside the parent is
    fill: the content is limited to the parent's region.
    """
    if prov is None:
        return None
    name, m, limit = prov
    if parent_size is not None:
        limit = quad_of(m, parent_size)
    return (name, compose(m, n), limit)


def quad_of(m, size):
    w, h = size
    return tuple(apply(m, x, y) for x, y in ((0, 0), (w, 0), (w, h), (0, h)))


def inside(point, quad) -> bool:
    """Whether a point is inside a convex quad (either winding), with a little slack."""
    sign = 0
    for i in range(4):
        (x0, y0), (x1, y1) = quad[i], quad[(i + 1) % 4]
        cross = (x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0)
        if abs(cross) < 1e-6 * (abs(x1 - x0) + abs(y1 - y0) + 1) * 100:
            continue
        s = 1 if cross > 0 else -1
        if sign and s != sign:
            return False
        sign = s
    return True


def rect_of(quad):
    """A quad as (box, angle): ``box`` turned ``angle`` degrees counter-clockwise about its centre."""
    (x0, y0), (x1, y1), _, (x3, y3) = quad
    ux, uy = x1 - x0, y1 - y0
    vx, vy = x3 - x0, y3 - y0
    width, height = math.hypot(ux, uy), math.hypot(vx, vy)
    cx = (quad[0][0] + quad[2][0]) / 2
    cy = (quad[0][1] + quad[2][1]) / 2
    angle = -math.degrees(math.atan2(uy, ux))  # y points down: counter-clockwise is negative atan2
    # The same rectangle with the smallest turn: a rectangle turned by 90 is its transpose.
    angle = (angle + 180.0) % 180.0
    if angle > 135.0:
        angle -= 180.0
    elif angle > 45.0:
        angle -= 90.0
        width, height = height, width
    if abs(angle) < 0.01:
        angle = 0.0
    box = [cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2]
    return box, angle


def describe(prov, size):
    if prov is None or size is None:
        return None
    name, m, limit = prov
    quad = quad_of(m, size)
    # A turned or padded view of a region (a crop rotated with expand=True)
    # shows no more than that region: report the region.
    if all(inside(p, quad) for p in limit):
        quad = limit
    box, angle = rect_of(quad)
    if not all(math.isfinite(v) for v in box):
        return None
    return {"input": name, "box": [round(v) for v in box], "angle": round(angle, 2), "how": "tracked", "score": 1.0}


def view_prov(arr, entry):
    """A numpy view's provenance from its offset and strides into the tracked array."""
    _ref, pointer, s0, s1, prov = entry
    if arr.ndim < 2 or s0 <= 0 or s1 <= 0:
        return None
    offset = arr.__array_interface__["data"][0] - pointer
    if offset < 0:
        return None
    row, rest = divmod(offset, s0)
    col = rest // s1
    r0, r1 = arr.strides[0], arr.strides[1]
    if r0 <= 0 or r1 <= 0 or r0 % s0 or r1 % s1:
        return None  # flipped or transposed views: not followed
    return derived(prov, (r1 // s1, 0, col, 0, r0 // s0, row))


# -- hooks ---------------------------------------------------------------------------------

TRACKER = Tracker()


_installed = False


def install(files) -> Tracker:
    """Patches PIL, numpy and cv2 (once per process); ``files`` are the input names."""
    global _installed
    TRACKER.inputs = {os.path.abspath(n) for n in files}
    if not _installed:
        _installed = True
        from provenance_hooks import hook_cv2, hook_numpy, hook_pil  # they build on this module

        for hook in (hook_pil, hook_numpy, hook_cv2):
            try:
                hook(TRACKER)
            except Exception:  # a library missing or changed: that part is untracked
                pass
    return TRACKER
