"""The sandbox runtime: a long-lived worker that runs model code.

It runs inside the sandbox (bubblewrap or a container), never on the host's
side of the boundary.  Started once per session, it imports the heavy
libraries up front, says ``ready``, and then serves requests read from its
stdin and answered on its stdout (see ``protocol.py``):

    runtime -> {"op": "ready"}                    (once, when the imports are done)
    host -> {"op": "init", "files": [names], "guard": bool}  + one blob per file
         <- {"op": "initialized"} or {"op": "error", "message": str}
    host -> {"op": "add_files", "files": [names]}  + one blob per file  (same answers)
    host -> {"op": "run", "code": str}
         <- {"op": "output", "data": str}        (streamed while the code runs)
         <- {"op": "result", "outcome", "dropped", "notes", "images": [...]} + one blob per image
    host -> {"op": "libraries", "names": [specs]}
         <- {"op": "libraries", "libraries": {name: {"available", "version" or "error"}}}
    host -> {"op": "close"}

Timeouts are enforced by the host, which kills the whole sandbox: this file
keeps no secrets and needs no clean-up.  The semantics mirror Gemini's code
execution: variables persist between runs like a notebook, images come back
from open matplotlib figures, ``display(img)``/``Image.show()`` and image
files the run wrote into the working directory.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import sys
import threading
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import protocol  # noqa: E402
import returned  # noqa: E402
import tracebacks  # noqa: E402

OUTPUT_LIMIT = int(os.environ.get("AGENTIC_VISION_OUTPUT_LIMIT", 64 * 1024))
MAX_IMAGES = int(os.environ.get("AGENTIC_VISION_MAX_IMAGES", 10))
MAX_IMAGE_BYTES = int(os.environ.get("AGENTIC_VISION_MAX_IMAGE_BYTES", 20 * 1024 * 1024))
# Largest image that goes back (the host checks it again); larger ones are downscaled.
MAX_IMAGE_PIXELS = int(os.environ.get("AGENTIC_VISION_MAX_IMAGE_PIXELS", 64_000_000))
# PIL's bomb limit for Image.open inside: the host's input limit, sent with "init".
DECODE_MAX_PIXELS = 200_000_000
# A written image file is read up to this size (the file-size rlimit bounds it too).
MAX_FILE_READ = 256 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
# Formats a model API accepts as they are; anything else is re-encoded as PNG.
PASSTHROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
PRELOAD = ("numpy", "PIL.Image", "PIL.ImageDraw", "PIL.ImageOps", "cv2", "matplotlib.pyplot")


class Channel:
    """The protocol stream, moved off fds 0/1 so model code cannot scribble on it."""

    def __init__(self) -> None:
        self.rx = os.fdopen(os.dup(0), "rb", buffering=0)
        self.tx = os.fdopen(os.dup(1), "wb")
        self.lock = threading.Lock()

    def send(self, header: dict, blobs=()) -> None:
        with self.lock:
            protocol.write_message(self.tx, header, blobs)

    def receive(self):
        return protocol.read_message(self.rx)


class Output:
    """Bounded stdout+stderr of one run, streamed to the host as it is written."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.sent = 0
        self.dropped = 0

    def reset(self) -> None:
        self.sent = 0
        self.dropped = 0

    def emit(self, text: str) -> None:
        if not text:
            return
        room = OUTPUT_LIMIT - self.sent
        if room <= 0:
            self.dropped += len(text)
            return
        if len(text) > room:
            self.dropped += len(text) - room
            text = text[:room]
        self.sent += len(text)
        self.channel.send({"op": "output", "data": text})


class Stream(io.TextIOBase):
    """sys.stdout / sys.stderr replacement; stdout and stderr share one Output."""

    def __init__(self, output: Output) -> None:
        self.output = output

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.output.emit(text)
        return len(text)

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


class FdCapture:
    """Output written to fds 1 and 2 directly (C libraries, child processes)."""

    def __init__(self) -> None:
        path = "/tmp/.agentic-vision-fd-output"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        self.file = os.fdopen(fd, "rb+", buffering=0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(fd, 1)
        os.dup2(fd, 2)

    # Start-up chatter of native libraries (TensorFlow on a machine without a
    # GPU) that says nothing about the model's code.
    NOISE = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "Could not find cuda drivers on your machine",
        "oneDNN custom operations are on",
    )

    def collect(self) -> str:
        self.file.seek(0)
        data = self.file.read(OUTPUT_LIMIT + 1)
        self.file.seek(0)
        self.file.truncate()
        text = data.decode("utf-8", "replace")
        if any(n in text for n in self.NOISE):
            text = "".join(line for line in text.splitlines(True) if not any(n in line for n in self.NOISE))
        return text


class Images:
    """Collects what a run shows: display()/show(), open figures, written files."""

    def __init__(self) -> None:
        self.pending: list[tuple[bytes, str]] = []
        self.skipped = 0
        self.problems: list[str] = []

    def add_encoded(self, data: bytes, mime: str) -> None:
        if len(self.pending) >= MAX_IMAGES:
            self.skipped += 1
        elif len(data) > MAX_IMAGE_BYTES:
            from PIL import Image

            try:
                img = Image.open(io.BytesIO(data))
                img.load()
            except Exception as exc:
                self.problems.append(f"an image of {len(data)} bytes was not returned: {type(exc).__name__}: {exc}")
                return
            self.add_pil(img)
        else:
            self.pending.append((data, mime))

    def add_pil(self, img) -> None:
        if len(self.pending) >= MAX_IMAGES:
            self.skipped += 1
            return
        if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        data, mime, note = returned.fit(img, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS)
        if note:
            self.problems.append(note)
        if data is not None:
            self.pending.append((data, mime))

    def take(self):
        pending, self.pending = self.pending, []
        notes = list(self.problems)
        if self.skipped:
            notes.append(f"{self.skipped} more image(s) not returned: the limit is {MAX_IMAGES} per run")
        self.skipped = 0
        self.problems = []
        return pending, notes


def to_pil(obj):
    """Turns what model code passes to display() into a PIL image."""
    from PIL import Image

    if isinstance(obj, Image.Image):
        return obj
    if isinstance(obj, (bytes, bytearray)):
        img = Image.open(io.BytesIO(bytes(obj)))
        img.load()
        return img
    if hasattr(obj, "savefig"):  # a matplotlib Figure
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight")
        buf.seek(0)
        img = Image.open(buf)
        img.load()
        return img
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is always preloaded
        np = None
    if np is not None and isinstance(obj, np.ndarray):
        arr = obj
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        elif arr.dtype != np.uint8:
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            if 0.0 <= lo and hi <= 1.0 and arr.dtype.kind == "f":
                arr = (arr * 255).round()
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        return Image.fromarray(arr)
    raise TypeError(f"display() cannot show a {type(obj).__name__}; pass a PIL image, a numpy array or a figure")


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


class Runtime:
    def __init__(self) -> None:
        self.channel = Channel()
        self.output = Output(self.channel)
        self.fd_capture = FdCapture()
        self.images = Images()
        self.namespace: dict = {}
        self.guard = None
        self.files: list[str] = []
        self.preload_errors: dict[str, str] = {}
        self.preload()
        stream = Stream(self.output)
        sys.stdout = stream
        sys.stderr = stream
        self.hook_display()

    def preload(self) -> None:
        os.environ.setdefault("MPLBACKEND", "Agg")
        saved_filters = warnings.filters[:]
        warnings.simplefilter("ignore")
        for name in PRELOAD:
            try:
                __import__(name)
            except Exception as exc:  # a library missing from this environment
                self.preload_errors[name] = f"{type(exc).__name__}: {exc}"
        warnings.filters[:] = saved_filters
        self.guard_module = self.guard_names = None
        try:
            import guard  # built now so that opening a session does not pay for it

            self.guard_module, self.guard_names = guard, guard.guard_namespace()
        except Exception as exc:
            self.preload_errors["guard"] = f"{type(exc).__name__}: {exc}"
        try:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = DECODE_MAX_PIXELS
            # Beyond the limit PIL only warns; make a bomb an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
        except ImportError:
            pass

    def hook_display(self) -> None:
        images = self.images

        def display(*objs):
            for obj in objs:
                images.add_pil(to_pil(obj))

        self.display = display
        try:
            from PIL import Image

            Image.Image.show = lambda img, *args, **kwargs: display(img)
        except ImportError:
            pass
        try:
            import cv2

            def imshow(_name, mat):
                # cv2 arrays are BGR; the model means the picture it sees.
                if getattr(mat, "ndim", 0) == 3 and mat.shape[2] == 3:
                    mat = cv2.cvtColor(mat, cv2.COLOR_BGR2RGB)
                elif getattr(mat, "ndim", 0) == 3 and mat.shape[2] == 4:
                    mat = cv2.cvtColor(mat, cv2.COLOR_BGRA2RGBA)
                display(mat)

            cv2.imshow = imshow
            cv2.waitKey = lambda *a, **k: -1
            cv2.destroyAllWindows = lambda *a, **k: None
        except ImportError:
            pass
        try:
            import matplotlib.pyplot as plt

            plt.show = lambda *a, **k: None  # open figures are collected after the run
        except ImportError:
            pass

    # -- requests -----------------------------------------------------------

    def write_inputs(self, names, blobs) -> None:
        for name, data in zip(names, blobs):
            if os.path.basename(name) != name or name in ("", ".", ".."):
                raise ValueError(f"bad input file name {name!r}")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        self.files += list(names)

    def init(self, header: dict, blobs: list[bytes]) -> None:
        try:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = int(header.get("max_pixels") or DECODE_MAX_PIXELS)
        except ImportError:
            pass
        self.write_inputs(header.get("files", []), blobs)
        self.cache = InputCache(self.files)
        self.cache.install()
        self.namespace = {"__name__": "__main__", "display": self.display}
        if header.get("guard", True):
            if self.guard_module is None:
                raise RuntimeError(f"the guard is unavailable: {self.preload_errors.get('guard')}")
            self.guard = self.guard_module
            self.namespace.update(self.guard_names)
            self.namespace["display"] = self.display

    def snapshot(self) -> dict:
        seen = {}
        for root, dirs, files in os.walk(".", followlinks=False):
            for name in files:
                path = os.path.join(root, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                seen[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
            if len(seen) > 10_000:
                break
        return seen

    def collect_files(self, before: dict) -> None:
        after = self.snapshot()
        changed = sorted(p for p, sig in after.items() if before.get(p) != sig)
        for path in changed:
            if os.path.splitext(path)[1].lower() not in IMAGE_SUFFIXES:
                continue
            self.collect_file(path)

    def collect_file(self, path: str) -> None:
        from PIL import Image

        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            self.images.problems.append(f"{path[2:]} was not returned: {exc.strerror or exc}")
            return
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return
            data = f.read(MAX_FILE_READ + 1)
        if len(data) > MAX_FILE_READ:
            self.images.problems.append(f"{path[2:]} was not returned: larger than {MAX_FILE_READ} bytes")
            return
        try:
            img = Image.open(io.BytesIO(data))  # PIL's bomb limit (DECODE_MAX_PIXELS) holds here
            img.load()
        except Exception as exc:
            self.images.problems.append(f"{path[2:]} was not returned: not a readable image ({type(exc).__name__}: {exc})")
            return
        mime = PASSTHROUGH.get(img.format or "")
        if mime and len(data) <= MAX_IMAGE_BYTES and img.width * img.height <= MAX_IMAGE_PIXELS:
            self.images.add_encoded(data, mime)
        else:
            self.images.add_pil(img)

    def collect_figures(self) -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        try:
            for num in plt.get_fignums():
                fig = plt.figure(num)
                buf = io.BytesIO()
                fig.savefig(buf, format="png", bbox_inches="tight", pil_kwargs={"compress_level": 1})
                self.images.add_encoded(buf.getvalue(), "image/png")
        except Exception as exc:
            self.images.problems.append(f"a figure could not be drawn: {type(exc).__name__}: {exc}")
        finally:
            plt.close("all")

    def execute(self, code: str):
        """Runs one piece of model code; returns (outcome, error text)."""
        try:
            if self.guard is not None:
                compiled = self.guard.compile_guarded(code, "<code>")
            else:
                compiled = compile(code, "<code>", "exec")
        except SyntaxError:
            return "OUTCOME_FAILED", traceback.format_exc(limit=0)
        except Exception as exc:  # guard.GuardError
            return "OUTCOME_FAILED", f"{type(exc).__name__}: {exc}\n"
        try:
            exec(compiled, self.namespace)
        except SystemExit as exc:
            return "OUTCOME_FAILED", f"SystemExit: {exc.code}\n"
        except BaseException as exc:
            # Only the model's own frames and the library frames below them.
            return "OUTCOME_FAILED", tracebacks.format_for_model(exc, code)
        return "OUTCOME_OK", ""

    def run(self, header: dict) -> None:
        self.output.reset()
        before = self.snapshot()
        outcome, error = self.execute(header["code"])
        sys.stdout = sys.stderr = Stream(self.output)  # model code may have replaced them
        try:
            sys.__stdout__.flush()
        except Exception:
            pass
        self.output.emit(self.fd_capture.collect())
        if error:
            self.output.emit(error)
        self.collect_figures()
        self.collect_files(before)
        images, notes = self.images.take()
        self.channel.send(
            {
                "op": "result",
                "outcome": outcome,
                "dropped": self.output.dropped,
                "notes": notes,
                "images": [{"mime_type": mime} for _, mime in images],
            },
            [data for data, _ in images],
        )

    def serve(self) -> None:
        self.channel.send({"op": "ready"})
        while True:
            try:
                header, blobs = self.channel.receive()
            except protocol.ProtocolError:
                return
            op = header.get("op")
            if op == "run":
                self.run(header)
            elif op == "init":
                try:
                    self.init(header, blobs)
                    self.channel.send({"op": "initialized"})
                except Exception as exc:
                    self.channel.send({"op": "error", "message": f"{type(exc).__name__}: {exc}"})
            elif op == "add_files":
                try:
                    self.write_inputs(header.get("files", []), blobs)
                    self.cache.names = {os.path.abspath(n) for n in self.files}
                    self.channel.send({"op": "initialized"})
                except Exception as exc:
                    self.channel.send({"op": "error", "message": f"{type(exc).__name__}: {exc}"})
            elif op == "libraries":
                self.channel.send({"op": "libraries", "libraries": libraries(header.get("names", []))})
            elif op == "close":
                return
            else:
                self.channel.send({"op": "error", "message": f"unknown op {op!r}"})


def libraries(specs):
    """Imports each library by name and reports its version or the error."""
    from importlib import import_module, metadata

    report = {}
    for spec in specs:
        try:
            import_module(spec["import"])
            version = metadata.version(spec["distribution"])
            report[spec["name"]] = {"available": True, "version": version}
        except Exception as exc:
            report[spec["name"]] = {"available": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return report


def apply_rlimits() -> None:
    """Limits from the host, set hard so that model code cannot raise them."""
    import json
    import resource

    spec = json.loads(os.environ.pop("AGENTIC_VISION_RLIMITS", "{}") or "{}")
    for name, value in spec.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def seed_matplotlib_cache() -> None:
    """Copies a prebuilt font list in, so the first pyplot import is fast."""
    seed = os.environ.pop("AGENTIC_VISION_MPL_SEED", "")
    target = os.environ.get("MPLCONFIGDIR", "")
    if not seed or not target or not os.path.isdir(seed):
        return
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(seed):
        if name.endswith(".json"):
            with open(os.path.join(seed, name), "rb") as src, open(os.path.join(target, name), "wb") as dst:
                dst.write(src.read())


def main() -> None:
    # A write past RLIMIT_FSIZE should be an OSError for the model, not a kill.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    apply_rlimits()
    seed_matplotlib_cache()
    Runtime().serve()


if __name__ == "__main__":
    main()
