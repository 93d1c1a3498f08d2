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

import functools
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
        """What goes to the host for a shown object: a JSON-able dict or None."""
        return describe(self.of(obj), size or shape_size(obj))

    def file_source(self, path):
        entry = self.saved.pop(os.path.abspath(path), None)
        if entry is None:
            return None
        signature, prov, size = entry
        return describe(prov, size) if signature == file_signature(path) else None

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


def install(files) -> Tracker:
    """Patches PIL, numpy and cv2 (once per process); ``files`` are the input names."""
    TRACKER.inputs = {os.path.abspath(n) for n in files}
    if not getattr(install, "done", False):
        install.done = True
        for hook in (hook_pil, hook_numpy, hook_cv2):
            try:
                hook(TRACKER)
            except Exception:  # a library missing or changed: that part is untracked
                pass
    return TRACKER


def set_prov(img, prov) -> None:
    if prov is None:
        img.__dict__.pop(KEY, None)
    else:
        img.__dict__[KEY] = prov


def hook_pil(tracker: Tracker) -> None:
    from PIL import Image

    cls = Image.Image
    original_open = Image.open

    @functools.wraps(original_open)
    def open_(fp, *args, **kwargs):
        img = original_open(fp, *args, **kwargs)
        try:
            full = tracker.is_input(fp)
            if full is not None:
                set_prov(img, tracker.input_prov(full, img.size))
        except Exception:
            pass
        return img

    Image.open = open_

    def wrap(name, after):
        original = getattr(cls, name)

        @functools.wraps(original)
        def method(self, *args, **kwargs):
            before = self.__dict__.get(KEY)
            old_size = self.size
            result = original(self, *args, **kwargs)
            if before is not None:
                try:
                    after(self, before, old_size, result, args, kwargs)
                except Exception:
                    target = result if isinstance(result, cls) else self
                    target.__dict__.pop(KEY, None)
            return result

        setattr(cls, name, method)

    original_new = cls._new

    @functools.wraps(original_new)
    def _new(self, im):
        new = original_new(self, im)
        prov = self.__dict__.get(KEY)
        if prov is not None and new.size == self.size:  # same pixels, other values (convert, filter, copy)
            new.__dict__[KEY] = prov
        return new

    cls._new = _new

    def arg(args, kwargs, i, name, default=None):
        return args[i] if len(args) > i else kwargs.get(name, default)

    def after_crop(self, prov, old, result, args, kwargs):
        box = arg(args, kwargs, 0, "box")
        left, top = (0, 0) if box is None else (box[0], box[1])
        set_prov(result, derived(prov, (1, 0, left, 0, 1, top)))

    def after_resize(self, prov, old, result, args, kwargs):
        box = arg(args, kwargs, 2, "box") or (0, 0, old[0], old[1])
        w, h = result.size
        n = (float(box[2] - box[0]) / w, 0, box[0], 0, float(box[3] - box[1]) / h, box[1])
        set_prov(result, derived(prov, n))

    def after_reduce(self, prov, old, result, args, kwargs):
        box = arg(args, kwargs, 1, "box") or (0, 0, old[0], old[1])
        w, h = result.size
        n = (float(box[2] - box[0]) / w, 0, box[0], 0, float(box[3] - box[1]) / h, box[1])
        set_prov(result, derived(prov, n))

    def after_thumbnail(self, prov, old, result, args, kwargs):  # in place
        w, h = self.size
        set_prov(self, derived(prov, (old[0] / w, 0, 0, 0, old[1] / h, 0)))

    def after_transform(self, prov, old, result, args, kwargs):
        method = arg(args, kwargs, 1, "method")
        data = arg(args, kwargs, 2, "data")
        w, h = result.size
        if method == Image.Transform.AFFINE and data is not None and len(data) == 6:
            n = tuple(float(v) for v in data)
        elif method == Image.Transform.EXTENT and data is not None and len(data) == 4:
            x0, y0, x1, y1 = (float(v) for v in data)
            n = ((x1 - x0) / w, 0, x0, 0, (y1 - y0) / h, y0)
        else:
            set_prov(result, None)
            return
        set_prov(result, derived(prov, n, old))

    def after_transpose(self, prov, old, result, args, kwargs):
        op = arg(args, kwargs, 0, "method")
        w, h = old
        T = Image.Transpose
        maps = {
            T.FLIP_LEFT_RIGHT: (-1, 0, w, 0, 1, 0),
            T.FLIP_TOP_BOTTOM: (1, 0, 0, 0, -1, h),
            T.ROTATE_90: (0, -1, w, 1, 0, 0),
            T.ROTATE_180: (-1, 0, w, 0, -1, h),
            T.ROTATE_270: (0, 1, 0, -1, 0, h),
            T.TRANSPOSE: (0, 1, 0, 1, 0, 0),
            T.TRANSVERSE: (0, -1, w, -1, 0, h),
        }
        n = maps.get(op)
        set_prov(result, None if n is None else derived(prov, n))

    def after_save(self, prov, old, result, args, kwargs):
        tracker.remember_file(arg(args, kwargs, 0, "fp"), prov, self.size)

    wrap("crop", after_crop)
    wrap("resize", after_resize)
    wrap("reduce", after_reduce)
    wrap("thumbnail", after_thumbnail)
    wrap("transform", after_transform)
    wrap("transpose", after_transpose)
    wrap("save", after_save)

    original_fromarray = Image.fromarray

    @functools.wraps(original_fromarray)
    def fromarray(obj, *args, **kwargs):
        img = original_fromarray(obj, *args, **kwargs)
        try:
            prov = tracker.array_prov(obj)
            if prov is not None:
                set_prov(img, prov)
        except Exception:
            pass
        return img

    Image.fromarray = fromarray


def hook_numpy(tracker: Tracker) -> None:
    import numpy as np
    from PIL import Image

    def wrap(name):
        original = getattr(np, name)

        @functools.wraps(original)  # same name and module: pickling np.array by reference still works
        def convert(obj, *args, **kwargs):
            result = original(obj, *args, **kwargs)
            if result is not obj:
                try:
                    if isinstance(obj, Image.Image):
                        prov = obj.__dict__.get(KEY)
                    elif tracker.arrays and isinstance(obj, np.ndarray):
                        prov = tracker.array_prov(obj)
                    else:
                        prov = None
                    if prov is not None and isinstance(result, np.ndarray) and result.ndim >= 2:
                        tracker.register(result, prov)
                except Exception:
                    pass
            return result

        setattr(np, name, convert)

    for name in ("array", "asarray", "asanyarray", "ascontiguousarray"):
        wrap(name)


def hook_cv2(tracker: Tracker) -> None:
    import cv2

    original_imread = cv2.imread

    @functools.wraps(original_imread)
    def imread(filename, *args, **kwargs):
        arr = original_imread(filename, *args, **kwargs)
        try:
            full = tracker.is_input(filename)
            if full is not None and arr is not None and arr.ndim >= 2:
                tracker.register(arr, tracker.input_prov(full, (arr.shape[1], arr.shape[0])))
        except Exception:
            pass
        return arr

    cv2.imread = imread

    def wrap(name, mapping):
        original = getattr(cv2, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def fn(src, *args, **kwargs):
            result = original(src, *args, **kwargs)
            try:
                prov = tracker.array_prov(src) if tracker.arrays else None
                out = result[1] if isinstance(result, tuple) else result  # threshold returns (t, image)
                if prov is not None and getattr(out, "ndim", 0) >= 2:
                    n = mapping(src, out, args, kwargs)
                    if n is not None:
                        parent = (src.shape[1], src.shape[0]) if name == "warpAffine" else None
                        tracker.register(out, derived(prov, n, parent))
            except Exception:
                pass
            return result

        setattr(cv2, name, fn)

    def same(src, out, args, kwargs):
        return (1, 0, 0, 0, 1, 0) if out.shape[:2] == src.shape[:2] else None

    def scaled(src, out, args, kwargs):
        h, w = src.shape[:2]
        oh, ow = out.shape[:2]
        return (w / ow, 0, 0, 0, h / oh, 0)

    def rotate(src, out, args, kwargs):
        code = args[0] if args else kwargs.get("rotateCode")
        h, w = src.shape[:2]
        return {cv2.ROTATE_90_CLOCKWISE: (0, 1, 0, -1, 0, h), cv2.ROTATE_180: (-1, 0, w, 0, -1, h),
                cv2.ROTATE_90_COUNTERCLOCKWISE: (0, -1, w, 1, 0, 0)}.get(code)

    def flip(src, out, args, kwargs):
        code = args[0] if args else kwargs.get("flipCode")
        h, w = src.shape[:2]
        return (1, 0, 0, 0, -1, h) if code == 0 else (-1, 0, w, 0, 1, 0) if code > 0 else (-1, 0, w, 0, -1, h)

    def warp_affine(src, out, args, kwargs):
        m = args[0] if args else kwargs.get("M")
        flags = args[2] if len(args) > 2 else kwargs.get("flags", 0)
        a, b, c = (float(v) for v in m[0])
        d, e, f = (float(v) for v in m[1])
        if flags & cv2.WARP_INVERSE_MAP:
            return (a, b, c, d, e, f)
        det = a * e - b * d
        if abs(det) < 1e-12:
            return None
        # dst -> src is the inverse of the matrix given
        ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
        return (ia, ib, -(ia * c + ib * f), id_, ie, -(id_ * c + ie * f))

    wrap("resize", scaled)
    wrap("rotate", rotate)
    wrap("flip", flip)
    wrap("warpAffine", warp_affine)
    for name in ("cvtColor", "GaussianBlur", "medianBlur", "blur", "bilateralFilter", "equalizeHist",
                 "Canny", "threshold", "adaptiveThreshold", "convertScaleAbs"):
        wrap(name, same)

    original_imwrite = cv2.imwrite

    @functools.wraps(original_imwrite)
    def imwrite(filename, img, *args, **kwargs):
        ok = original_imwrite(filename, img, *args, **kwargs)
        try:
            if ok and tracker.arrays:
                tracker.remember_file(filename, tracker.array_prov(img), (img.shape[1], img.shape[0]))
        except Exception:
            pass
        return ok

    cv2.imwrite = imwrite
