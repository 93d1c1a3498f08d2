"""What a run prints and shows, collected inside the sandbox.

Output (stdout, stderr and whatever reaches fds 1 and 2) is streamed to the
broker as the run writes it, up to the run's limit; images come from
``display()``/``show()``, open matplotlib figures and image files the run
wrote, up to the image limits.  The limits are the protocol's: the broker
and the host enforce them again.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import threading

import protocol
import returned

OUTPUT_LIMIT = protocol.OUTPUT_LIMIT
MAX_IMAGES = protocol.MAX_IMAGES
MAX_IMAGE_BYTES = protocol.MAX_IMAGE_BYTES
# Largest image that goes back (the host checks it again); larger ones are downscaled.
MAX_IMAGE_PIXELS = 64_000_000
# PIL's bomb limit for Image.open inside: the host's input limit, sent with "init".
DECODE_MAX_PIXELS = 200_000_000
# A written image file is read up to this size (the file-size rlimit bounds it too).
MAX_FILE_READ = 256 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
# Formats a model API accepts as they are; anything else is re-encoded as PNG.
PASSTHROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


class Output:
    """Bounded stdout+stderr of one run, streamed to the broker as it is written.

    Text written while no run is active (a thread the last run left behind)
    is dropped here: a frame outside a run would be a protocol violation.
    """

    def __init__(self, channel) -> None:
        self.channel = channel
        self.lock = threading.RLock()  # a signal handler may print in the middle of a print
        self.active = False
        self.sent = 0
        self.dropped = 0

    def start(self) -> None:
        with self.lock:
            self.active, self.sent, self.dropped = True, 0, 0

    def finish(self, send_result) -> None:
        """Ends the run: ``send_result()`` is the last frame any thread sends for it."""
        with self.lock:
            self.active = False
            send_result()

    def emit(self, text: str, stream: str = "stdout") -> None:
        if not text:
            return
        with self.lock:
            if not self.active:
                return
            room = OUTPUT_LIMIT - self.sent
            if room <= 0:
                self.dropped += len(text)
                return
            if len(text) > room:
                self.dropped += len(text) - room
                text = text[:room]
            self.sent += len(text)
            self.channel.send({"op": "output", "data": text, "stream": stream})


class Stream(io.TextIOBase):
    """sys.stdout / sys.stderr replacement; stdout and stderr share one Output (one
    limit, one order), each chunk tagged with its stream."""

    def __init__(self, output: Output, name: str = "stdout") -> None:
        self.output = output
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.output.emit(text, self.name)
        return len(text)

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


class FdCapture:
    """Output written to fds 1 and 2 directly (C libraries, child processes), one file each."""

    def __init__(self) -> None:
        self.files = {}
        for fd_number, stream in ((1, "stdout"), (2, "stderr")):
            path = f"/tmp/.agentic-vision-fd-{stream}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            self.files[stream] = os.fdopen(fd, "rb+", buffering=0)
            os.dup2(fd, fd_number)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)

    # Start-up chatter of native libraries (TensorFlow on a machine without a
    # GPU) that says nothing about the model's code.
    NOISE = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "Could not find cuda drivers on your machine",
        "oneDNN custom operations are on",
    )

    def collect(self) -> list[tuple[str, str]]:
        """(stream, text) of what reached fds 1 and 2 since the last call."""
        collected = []
        for stream, file in self.files.items():
            file.seek(0)
            data = file.read(OUTPUT_LIMIT + 1)
            file.seek(0)
            file.truncate()
            text = data.decode("utf-8", "replace")
            if any(n in text for n in self.NOISE):
                text = "".join(line for line in text.splitlines(True) if not any(n in line for n in self.NOISE))
            collected.append((stream, text))
        return collected


class Images:
    """Collects what a run shows: display()/show(), open figures, written files."""

    def __init__(self) -> None:
        self.pending: list[tuple[bytes, str, dict | None]] = []  # data, MIME type, source (provenance.py)
        self.skipped = 0
        self.problems: list[str] = []

    def add_encoded(self, data: bytes, mime: str, source: dict | None = None) -> None:
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
            self.add_pil(img, source)
        else:
            self.pending.append((data, mime, source))

    def add_pil(self, img, source: dict | None = None) -> None:
        if len(self.pending) >= MAX_IMAGES:
            self.skipped += 1
            return
        if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        data, mime, note = returned.fit(img, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS)
        if note:
            self.problems.append(note)
        if data is not None:
            self.pending.append((data, mime, source))

    def take(self):
        pending, self.pending = self.pending, []
        notes = [n if len(n) <= protocol.MAX_NOTE else n[: protocol.MAX_NOTE - 3] + "..." for n in self.problems]
        room = protocol.MAX_NOTES - 1  # one kept for the count of skipped images
        if len(notes) > room:
            notes[room - 1 :] = [f"{len(notes) - room + 1} more problem(s) with images of this run"]
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




# -- images the run left behind -------------------------------------------------------


def snapshot() -> dict:
    """path -> (mtime, size, inode) of the files under the working directory."""
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


def collect_files(images: Images, before: dict, sources=lambda path: None) -> None:
    after = snapshot()
    changed = sorted(p for p, sig in after.items() if before.get(p) != sig)
    for path in changed:
        if os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES:
            collect_file(images, path, sources(path))


def collect_file(images: Images, path: str, source: dict | None = None) -> None:
    from PIL import Image

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        images.problems.append(f"{path[2:]} was not returned: {exc.strerror or exc}")
        return
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return
        data = f.read(MAX_FILE_READ + 1)
    if len(data) > MAX_FILE_READ:
        images.problems.append(f"{path[2:]} was not returned: larger than {MAX_FILE_READ} bytes")
        return
    try:
        img = Image.open(io.BytesIO(data))  # PIL's bomb limit (set from the host's max_pixels) holds here
        img.load()
    except Exception as exc:
        images.problems.append(f"{path[2:]} was not returned: not a readable image ({type(exc).__name__}: {exc})")
        return
    mime = PASSTHROUGH.get(img.format or "")
    if mime and len(data) <= MAX_IMAGE_BYTES and img.width * img.height <= MAX_IMAGE_PIXELS:
        images.add_encoded(data, mime, source)
    else:
        images.add_pil(img, source)


def collect_figures(images: Images) -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        for num in plt.get_fignums():
            fig = plt.figure(num)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight", pil_kwargs={"compress_level": 1})
            images.add_encoded(buf.getvalue(), "image/png")
    except Exception as exc:
        images.problems.append(f"a figure could not be drawn: {type(exc).__name__}: {exc}")
    finally:
        plt.close("all")
