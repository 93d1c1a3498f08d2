"""The interpreter: the model's persistent Python, run by the broker.

This process runs model code and is assumed hostile once it has: it holds
no channel to the host, only its end of a socket to the broker (the fd
named by its one argument),
which checks everything it sends (see ``broker.py``).  It imports the heavy
libraries up front, says ``ready``, and serves the broker's requests:

    interpreter -> {"op": "ready"}                  (once, when the imports are done)
    broker -> {"op": "init", "files": [names], "guard": bool}   (the broker wrote the files)
           <- {"op": "initialized"} or {"op": "error", "message": str}
    broker -> {"op": "add_files", "files": [names]}              (same answers)
    broker -> {"op": "run", "code": str}
           <- {"op": "output", "data": str, "stream": "stdout"|"stderr"}   (streamed while the code runs)
           <- {"op": "result", "outcome", "dropped", "notes", "images": [{"mime_type", "source"?}],
               "error"?: {"name", "value", "traceback"}} + one blob per image
              (source: where in an input the image came from, provenance.py)
    broker -> {"op": "libraries", "names": [specs]}
           <- {"op": "libraries", "libraries": {name: {"available", "version" or "error"}}}
    broker -> {"op": "close"}

The semantics mirror Gemini's code execution: variables persist between
runs like a notebook, images come back from open matplotlib figures,
``display(img)``/``Image.show()`` and image files the run wrote into the
working directory.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import protocol  # noqa: E402
import tracebacks  # noqa: E402
from capture import DECODE_MAX_PIXELS, FdCapture, Images, Output, Stream, collect_figures, collect_files, snapshot, to_pil  # noqa: E402
from input_cache import InputCache  # noqa: E402
import provenance  # noqa: E402

PRELOAD = ("numpy", "PIL.Image", "PIL.ImageDraw", "PIL.ImageOps", "cv2", "matplotlib.pyplot")


def clip(text: str, limit: int = protocol.MAX_NOTE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.lru_cache(maxsize=None)
def preload() -> tuple[dict, object, dict | None]:
    """Imports the heavy libraries and builds the guard's names, before any session, once per
    process (the template's, when this one was forked from it): (errors by library, the
    guard module or None, its namespace or None)."""
    errors: dict[str, str] = {}
    os.environ.setdefault("MPLBACKEND", "Agg")
    saved_filters = warnings.filters[:]
    warnings.simplefilter("ignore")
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception as exc:  # a library missing from this environment
            errors[name] = clip(f"{type(exc).__name__}: {exc}")
    warnings.filters[:] = saved_filters
    guard_module = guard_names = None
    try:
        import guard  # built now so that opening a session does not pay for it

        guard_module, guard_names = guard, guard.guard_namespace()
    except Exception as exc:
        errors["guard"] = clip(f"{type(exc).__name__}: {exc}")
    try:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = DECODE_MAX_PIXELS
        # Beyond the limit PIL only warns; make a bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
    except ImportError:
        pass
    return errors, guard_module, guard_names


_cache: InputCache | None = None


def install_hooks() -> InputCache:
    """The input cache and the provenance hooks, put into PIL, numpy and cv2 once per
    process (by the template before it forks, else at a session's start): the cache
    first, since the hooks wrap the cached open.  The cache starts empty."""
    global _cache
    if _cache is None:
        _cache = InputCache([])
        _cache.install()
        provenance.install([])
    return _cache


class Channel:
    """Frames to and from the broker; one lock, since output comes from any thread."""

    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)  # not for the model's child processes
        self.rx = os.fdopen(fd, "rb")
        self.tx = os.fdopen(os.dup(fd), "wb")
        self.lock = threading.Lock()

    def send(self, header: dict, blobs=()) -> None:
        with self.lock:
            protocol.write_message(self.tx, header, blobs)

    def receive(self):
        return protocol.read_message(self.rx)


class Interpreter:
    def __init__(self, channel_fd: int) -> None:
        self.channel = Channel(channel_fd)
        self.output = Output(self.channel)
        self.fd_capture = FdCapture()
        self.images = Images()
        self.namespace: dict = {}
        self.guard = None
        self.cache = InputCache([])
        self.tracker = provenance.TRACKER
        self.files: list[str] = []
        self.preload_errors, self.guard_module, self.guard_names = preload()
        # Two streams for the interpreter's life, and every stream they replace
        # kept: print() holds only a borrowed reference to sys.stdout (CPython
        # gh-130163), so a stream freed while a thread prints to it crashes the
        # interpreter.
        self.stdout = Stream(self.output, "stdout")
        self.stderr = Stream(self.output, "stderr")
        self.replaced: list = []
        self.set_streams()
        self.hook_display()

    def set_streams(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not self.stdout and stream is not self.stderr and all(stream is not kept for kept in self.replaced):
                self.replaced.append(stream)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def hook_display(self) -> None:
        images = self.images

        tracker = self.tracker

        def display(*objs):
            for obj in objs:
                img = to_pil(obj)
                images.add_pil(img, tracker.source(obj, img.size))

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

    def init(self, header: dict) -> None:
        try:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = int(header.get("max_pixels") or DECODE_MAX_PIXELS)
        except ImportError:
            pass
        self.files = list(header.get("files", []))
        self.cache = install_hooks()
        self._watch_files()
        self.namespace = {"__name__": "__main__", "display": self.display}
        if header.get("guard", True):
            if self.guard_module is None:
                raise RuntimeError(f"the guard is unavailable: {self.preload_errors.get('guard')}")
            self.guard = self.guard_module
            self.namespace.update(self.guard_names)
            self.namespace["display"] = self.display

    def add_files(self, header: dict) -> None:
        self.files += list(header.get("files", []))
        self._watch_files()

    def _watch_files(self) -> None:
        """The input cache and the provenance tracker (installed once per process) follow
        this session's input files."""
        self.cache.names = {os.path.abspath(n) for n in self.files}
        self.tracker.inputs = set(self.cache.names)

    def execute(self, code: str):
        """Runs one piece of model code; returns (outcome, error or None).

        The error is {"name", "value", "traceback"}: the exception's type name,
        its message, and the text the model sees (only its own frames and the
        library frames below them)."""
        try:
            if self.guard is not None:
                compiled = self.guard.compile_guarded(code, "<code>")
            else:
                # dont_inherit: this file's `from __future__ import annotations` is not the model's.
                compiled = compile(code, "<code>", "exec", dont_inherit=True)
        except SyntaxError as exc:
            return "OUTCOME_FAILED", error_of(exc, traceback.format_exc(limit=0))
        except Exception as exc:  # guard.GuardError
            return "OUTCOME_FAILED", error_of(exc, f"{type(exc).__name__}: {exc}\n")
        try:
            exec(compiled, self.namespace)
        except SystemExit as exc:
            # As when Python exits: None and 0 are success, the output so far stands.
            if exit_ok(exc.code):
                return "OUTCOME_OK", None
            return "OUTCOME_FAILED", {"name": "SystemExit", "value": clip(str(exc.code)), "traceback": f"SystemExit: {exc.code}\n"}
        except BaseException as exc:
            return "OUTCOME_FAILED", error_of(exc, tracebacks.format_for_model(exc, code))
        return "OUTCOME_OK", None

    def run(self, header: dict) -> None:
        self.output.start()
        before = snapshot()
        outcome, error = self.execute(header["code"])
        self.set_streams()  # model code may have replaced them
        try:
            sys.__stdout__.flush()
        except Exception:
            pass
        for stream, text in self.fd_capture.collect():
            self.output.emit(text, stream)
        if error:
            self.output.emit(error["traceback"], "stderr")
            tb = error["traceback"]
            if len(tb) > protocol.MAX_TRACEBACK:  # the end holds the exception itself
                tb = "..." + tb[-(protocol.MAX_TRACEBACK - 3):]
            error = {**error, "traceback": tb}
        collect_figures(self.images)
        collect_files(self.images, before, self.tracker.file_source)
        images, notes = self.images.take()
        result = {
            "op": "result",
            "outcome": outcome,
            "dropped": self.output.dropped,
            "notes": notes,
            "images": [{"mime_type": mime, **({"source": src} if src else {})} for _, mime, src in images],
        }
        if error:
            result["error"] = error
        self.output.finish(lambda: self.channel.send(result, [data for data, _, _ in images]))

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
            elif op in ("init", "add_files"):
                try:
                    (self.init if op == "init" else self.add_files)(header)
                    self.channel.send({"op": "initialized"})
                except Exception as exc:
                    self.channel.send({"op": "error", "message": clip(f"{type(exc).__name__}: {exc}")})
            elif op == "libraries":
                self.channel.send({"op": "libraries", "libraries": libraries(header.get("names", []))})
            elif op == "close":
                return
            else:
                self.channel.send({"op": "error", "message": clip(f"unknown op {op!r}")})


def exit_ok(code) -> bool:
    """sys.exit()/sys.exit(0)/sys.exit(None)/raise SystemExit end a run successfully."""
    return code is None or (isinstance(code, int) and code == 0)


def error_of(exc: BaseException, text: str) -> dict:
    try:
        value = str(exc)
    except Exception:  # an exception whose __str__ fails
        value = ""
    return {"name": clip(type(exc).__name__, 200), "value": clip(value), "traceback": text}


def libraries(specs):
    """Imports each library by name and reports its version or the error."""
    from importlib import import_module, metadata

    report = {}
    for spec in specs:
        try:
            import_module(spec["import"])
            version = metadata.version(spec["distribution"])
            report[spec["name"]] = {"available": True, "version": clip(version, 100)}
        except Exception as exc:
            report[spec["name"]] = {"available": False, "error": clip(f"{type(exc).__name__}: {exc}", 200)}
    return report


def main() -> None:
    # A write past RLIMIT_FSIZE should be an OSError for the model, not a kill.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    Interpreter(int(sys.argv[1])).serve()


if __name__ == "__main__":
    main()
