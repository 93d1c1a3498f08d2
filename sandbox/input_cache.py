"""Decoding each input image once per session (inside the sandbox).

Models open the same input again and again (crop here, zoom there); the
interpreter patches ``Image.open`` and ``cv2.imread`` so that an unchanged
input file is decoded once and then served from memory.
"""

from __future__ import annotations

import os
import stat


def shared_image_class():
    """A PIL image that shares its decoded pixels with the cache until written.

    Pillow copies a ``readonly`` image's pixels before any write through its
    own methods; the two doors it leaves open (pixel access objects and
    ``frombytes``) copy here first, so the cached original is never changed.
    """
    from PIL import Image

    class PixelsCopiedOnWrite:
        def __init__(self, image, access) -> None:
            self._image, self._access = image, access

        def __getitem__(self, xy):
            return self._access[xy]

        def __setitem__(self, xy, value) -> None:
            if self._image.readonly:
                self._image._ensure_mutable()
                self._access = Image.Image.load(self._image)
            self._access[xy] = value

        def __getattr__(self, name):
            return getattr(self._access, name)

    class SharedImage(Image.Image):
        def load(self):
            access = super().load()
            if self.readonly and access is not None:
                return PixelsCopiedOnWrite(self, access)
            return access

        def frombytes(self, *args, **kwargs):
            self._ensure_mutable()
            return super().frombytes(*args, **kwargs)

    return SharedImage


class InputCache:
    """Decodes each input image once per session, however often it is opened.

    ``Image.open``/``cv2.imread`` of an unchanged input file return the decoded
    original without decoding again: PIL images share its pixels until written
    (copy on write), numpy arrays are copies.
    """

    def __init__(self, names) -> None:
        self.names = {os.path.abspath(n) for n in names}
        self.pil = {}
        self.cv = {}

    def key(self, path):
        if not isinstance(path, (str, os.PathLike)):
            return None
        full = os.path.abspath(os.fspath(path))
        if full not in self.names:
            return None
        try:
            st = os.stat(full, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return (full, st.st_mtime_ns, st.st_size)

    def install(self) -> None:
        from PIL import Image

        original_open = Image.open
        cache = self
        try:
            shared_class = shared_image_class()
        except Exception:  # an older Pillow without these internals: plain copies
            shared_class = None

        def share(hit):
            if shared_class is not None and hasattr(hit, "_new") and hasattr(hit, "_ensure_mutable"):
                img = hit._new(hit.im)
                img.__class__ = shared_class
                img.readonly = 1
                return img
            return hit.copy()

        def cached_open(fp, mode="r", formats=None):
            key = cache.key(fp) if mode == "r" and formats is None else None
            if key is None:
                return original_open(fp, mode, formats)
            hit = cache.pil.get(key)
            if hit is None:
                hit = original_open(fp)
                hit.load()
                cache.pil = {key: hit}  # keep one decoded input at a time per library
            img = share(hit)
            img.format = hit.format
            img.filename = getattr(hit, "filename", "")
            return img

        Image.open = cached_open
        try:
            import cv2
        except ImportError:
            return
        original_imread = cv2.imread

        def cached_imread(filename, flags=cv2.IMREAD_COLOR, *rest):
            key = cache.key(filename) if not rest else None
            if key is None:
                return original_imread(filename, flags, *rest)
            hit = cache.cv.get((key, flags))
            if hit is None:
                hit = original_imread(filename, flags)
                if hit is None:
                    return None
                cache.cv = {(key, flags): hit}
            return hit.copy()

        cv2.imread = cached_imread

