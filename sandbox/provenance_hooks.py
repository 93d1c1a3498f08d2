"""The patches that keep provenance.py's maps up to date: PIL, numpy, cv2.

Each calls the original first and records only afterwards, inside ``try``:
a failure to track is a missing source, never an error in model code.
"""

from __future__ import annotations

import functools

from provenance import KEY, Tracker, derived

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
