"""A sandbox session: one runtime worker, its files and its variables.

``open_session`` is the public entry point.  The executor (bubblewrap or
Docker) only has to hand over fresh, ready workers; everything about runs,
deadlines, restarts and checking what comes back lives here, once.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Protocol, Union

from ..errors import InputError, SandboxUnavailable
from ..values import Execution, Image, Outcome, RunError
from ..images import MAX_PIXELS, check_output_image
from ..inputs.images import DEFAULT_MAX_PIXELS
from ..provenance import Provenance
from ..sandbox_runtime import protocol
from .executors import get_executor
from .runtime_files import library_specs
from .worker import Exchange, SandboxViolation, Worker, WorkerDied

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
MAX_INPUT_BYTES = 512 * 1024 * 1024
OUTPUT_LIMIT = protocol.OUTPUT_LIMIT
# Pixels of all images of one run together: what the host may decode for the
# model afterwards (ten 64-megapixel PNGs would cost it ten seconds).
MAX_RUN_PIXELS = 2 * MAX_PIXELS
INIT_TIMEOUT = 60.0
LIBRARIES_TIMEOUT = 300.0  # importing all 37, tensorflow included, takes seconds
COPY_RATE = 64 * 1024 * 1024  # bytes/s an input copy may take, on top of the timeout
LOST_STATE = "variables and imports from earlier runs are lost; the input files are back in the working directory"

InputSpec = Union[str, os.PathLike, tuple[str, bytes]]


class Executor(Protocol):
    kind: str
    cache_key: str  # changes whenever what is installed in the sandbox may have changed
    extras: tuple  # library specs of the extra libraries installed (empty: the default environment)

    def acquire(self) -> Worker:
        """A new worker that said ready and was never used by another session."""


@dataclass(frozen=True)
class InputFile:
    name: str
    data: bytes


def load_inputs(inputs: Iterable[InputSpec]) -> list[InputFile]:
    files: list[InputFile] = []
    total = 0
    for spec in inputs:
        if isinstance(spec, tuple):
            name, data = spec
        else:
            path = Path(spec)
            if not path.is_file():
                raise InputError(f"input file not found: {path}")
            name, data = path.name, path.read_bytes()
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise InputError(f"input name {name!r} must be a plain file name")
        if any(f.name == name for f in files):
            raise InputError(f"two inputs are named {name!r}; rename one")
        total += len(data)
        if total > MAX_INPUT_BYTES:
            raise InputError(f"inputs exceed {MAX_INPUT_BYTES // 2**20} MiB in total")
        files.append(InputFile(name, bytes(data)))
    return files


def copy_time(blobs: list[bytes]) -> float:
    """Seconds a copy of these files into the sandbox may take, on top of a timeout."""
    return sum(len(b) for b in blobs) / COPY_RATE


class Session:
    """Runs model code; variables persist between runs until a restart."""

    def __init__(self, executor: Executor, inputs: list[InputFile], timeout: float, guard: bool,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.executor = executor
        self.max_pixels = max_pixels
        self.kind = executor.kind
        self.inputs = inputs
        self.timeout = timeout
        self.guard = guard
        self._worker: Worker | None = None
        self._closed = False
        self._interrupted = False
        self._note = ""  # said at the start of the next run's output
        self._provenance: Provenance | None = None  # made on the first image shown
        self._start()
        # Whether opening this session had to start a sandbox (no warm one was waiting).
        self.started_cold = bool(self._worker.cold_start)

    # -- lifetime -------------------------------------------------------------

    def _start(self) -> None:
        started = time.perf_counter()
        worker = self.executor.acquire()
        init = {"op": "init", "files": [f.name for f in self.inputs], "guard": self.guard,
                "max_pixels": self.max_pixels}
        blobs = [f.data for f in self.inputs]
        try:
            self._request(worker, init, blobs, "initialized", "take the input files", INIT_TIMEOUT + copy_time(blobs))
        except SandboxUnavailable:
            worker.kill()
            raise
        self._worker = worker
        log.info("%s sandbox ready with %d input file(s) in %.2f s", self.kind, len(self.inputs),
                 time.perf_counter() - started)

    def _request(self, worker: Worker, header: dict, blobs: list[bytes], answer: str, what: str,
                 timeout: float) -> dict:
        """Sends one request and returns the reply whose op is ``answer``; a worker that
        dies, breaks the protocol, is silent for ``timeout`` s or refuses is a one-line
        SandboxUnavailable."""
        try:
            reply, _ = worker.request(Exchange({answer, "error"}), header, blobs, timeout=timeout)
        except (WorkerDied, TimeoutError) as exc:
            if isinstance(exc, SandboxViolation):
                why = f"it sent an invalid message ({exc})"
            else:
                why = str(exc) if isinstance(exc, WorkerDied) else f"no answer within {timeout:g} s"
            worker.kill()  # dead, or its channel out of step: the next request starts a fresh one
            if worker is self._worker:
                self._worker = None
            raise SandboxUnavailable(f"the {self.kind} sandbox could not {what}: {why}") from None
        if reply["op"] != answer:
            raise SandboxUnavailable(f"the {self.kind} sandbox refused to {what}: {reply['message']}")
        return reply

    def _restart(self) -> None:
        if self._worker is not None:
            self._worker.kill()
        self._worker = None
        self._start()

    def _ensure_worker(self) -> None:
        if self._closed:
            raise SandboxUnavailable(f"this {self.kind} sandbox session is closed: open a new one")
        if self._worker is None or not self._worker.alive:
            if self._worker is not None:  # it ended between runs: say so in the next run
                self._note = f"[Before this run {self._worker.failure}; it was restarted: {LOST_STATE}.]\n"
            self._restart()

    def add_inputs(self, inputs: Iterable[InputSpec]) -> list[InputFile]:
        """Puts more files into the working directory (kept across restarts too)."""
        files = load_inputs(inputs)
        taken = {f.name for f in self.inputs}
        for f in files:
            if f.name in taken:
                raise InputError(f"a file named {f.name!r} is already in the session; rename the new one")
        self._ensure_worker()
        worker = self._worker
        try:
            header, _ = worker.request(
                Exchange({"initialized", "error"}),
                {"op": "add_files", "files": [f.name for f in files]},
                [f.data for f in files],
                timeout=self.timeout + copy_time([f.data for f in files]),
            )
        except (WorkerDied, TimeoutError) as exc:
            # A fresh sandbox gets every file, the new ones too, or says why not.
            why = worker.failure if isinstance(exc, WorkerDied) else "the sandbox did not take them in time"
            worker.kill()
            self.inputs.extend(files)
            self._provenance = None
            self._restart()
            self._note = f"[While files were added {why}; it was restarted: {LOST_STATE}.]\n"
            return files
        if header["op"] != "initialized":
            raise SandboxUnavailable(f"the {self.kind} sandbox refused to take the files: {header['message']}")
        self.inputs.extend(files)
        self._provenance = None
        return files

    def interrupt(self) -> None:
        """Stops the run in progress (from another thread) by ending its worker.

        The run returns at once as failed; the next run starts a fresh worker
        with the input files, as after a timeout.
        """
        worker = self._worker
        if worker is not None:
            self._interrupted = True
            worker.kill()

    def close(self) -> None:
        """Ends the sandbox; a closed session never starts another one."""
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten session must not leave a sandbox running
        try:
            if self._worker is not None and not sys.is_finalizing():
                self._worker.kill()
        except Exception:
            pass

    @property
    def libraries(self) -> dict:
        """Library availability inside this session's sandbox (imports each one)."""
        self._ensure_worker()
        request = {"op": "libraries", "names": [*library_specs(), *self.executor.extras]}
        return self._request(self._worker, request, [], "libraries", "import its libraries", LIBRARIES_TIMEOUT)["libraries"]

    @property
    def worker_pid(self) -> int | None:
        """The host pid of the worker serving this session now (None between a crash and the next run,
        and for Docker, whose workers are containers: see ``container``)."""
        return self._worker.pid if self._worker is not None else None

    @property
    def container(self) -> str | None:
        """The Docker container serving this session now; None for other sandboxes."""
        return self._worker.container if self._worker is not None else None

    # -- running ----------------------------------------------------------------

    def run(self, code: str, timeout: float | None = None, *,
            on_output: Callable[[str, str], None] | None = None) -> Execution:
        """Runs ``code``; ``on_output(stream, text)`` ("stdout" or "stderr") gets what it
        prints as it prints it, in the calling thread.  If ``on_output`` raises, the run
        is stopped (the sandbox restarts before the next run, as after a timeout) and
        the exception propagates."""
        timeout = self.timeout if timeout is None else timeout
        self._ensure_worker()
        self._interrupted = False
        started = time.perf_counter()
        note, self._note = self._note, ""
        worker = self._worker
        exchange = Exchange({"result"}, output_limit=OUTPUT_LIMIT, streaming=on_output is not None)
        try:
            header, blobs = worker.request(exchange, {"op": "run", "code": code}, timeout=timeout, on_output=on_output)
        except KeyboardInterrupt:
            # Ctrl-C: the run goes on inside; end it, and keep what it had printed and how long it ran.
            worker.kill()
            self._worker = None
            self._note = f"[The previous run was stopped before it finished; the sandbox was restarted: {LOST_STATE}.]\n"
            raise RunInterrupted(Execution(Outcome.FAILED, note + exchange.output, [], time.perf_counter() - started,
                                           exchange.text_of("stdout"), exchange.text_of("stderr"),
                                           RunError("KeyboardInterrupt", "interrupted (Ctrl-C)", ""),
                                           stopped="interrupted (Ctrl-C)")) from None
        except (TimeoutError, WorkerDied) as exc:
            worker.kill()
            self._worker = None
            if self._interrupted:
                outcome, stopped = Outcome.FAILED, "The run was stopped on request"
                why = f"{stopped}. The sandbox was restarted"
                error = RunError("Interrupted", "the run was stopped on request", "")
            elif isinstance(exc, TimeoutError):
                outcome = Outcome.DEADLINE_EXCEEDED
                stopped = f"The run exceeded the time limit of {timeout:g} s and was stopped"
                why = f"{stopped}. The sandbox was restarted"
                error = RunError("TimeoutError", f"the run exceeded the time limit of {timeout:g} s", "")
            elif isinstance(exc, SandboxViolation):
                outcome, stopped = Outcome.FAILED, f"The sandbox sent an invalid message ({exc})"
                why = f"{stopped}; it was restarted"
                error = RunError("SandboxViolation", str(exc), "")
            else:
                outcome = Outcome.FAILED
                stopped = f"The sandbox process died ({exc}); this often means it ran out of memory"
                why = f"{stopped}. It was restarted"
                error = RunError("SandboxDied", str(exc), "")
            model_note = f"\n[{why}: {LOST_STATE}.]\n"
            return Execution(outcome, note + exchange.output + model_note, [], time.perf_counter() - started,
                             exchange.text_of("stdout"), exchange.text_of("stderr"), error,
                             stopped=stopped, model_note=model_note)
        except BaseException:
            # on_output raised: the run goes on inside; end it.
            worker.kill()
            self._worker = None
            self._note = f"[The previous run was stopped before it finished; the sandbox was restarted: {LOST_STATE}.]\n"
            raise
        chunks = [note, exchange.output]
        dropped = header["dropped"] + exchange.dropped
        if dropped:
            chunks.append(f"\n[output truncated: {dropped} more characters were not kept]\n")
        images: list[Image] = []
        kept: list[dict] = []
        notes = list(header["notes"])
        pixels = 0
        for meta, data in zip(header["images"], blobs):
            try:
                image = check_output_image(data, meta["mime_type"])
            except ValueError as exc:
                notes.append(f"an image was dropped: {exc}")
                continue
            pixels += image.width * image.height
            if pixels > MAX_RUN_PIXELS:
                notes.append(f"an image was dropped: the images of one run may have {MAX_RUN_PIXELS // 1_000_000} megapixels in all")
                continue
            images.append(image)
            kept.append(meta)
        if images:
            if self._provenance is None:
                self._provenance = Provenance(self.inputs)
            sources = self._provenance.sources(kept, images)
            images = [replace(im, source=src) for im, src in zip(images, sources)]
        chunks += [f"[{line}]\n" for line in notes]
        error = header.get("error")
        log.debug("run ended %s in %.2f s: %d characters of output, %d image(s)", header["outcome"],
                  time.perf_counter() - started, exchange.size, len(images))
        return Execution(Outcome(header["outcome"]), "".join(chunks), images, time.perf_counter() - started,
                         exchange.text_of("stdout"), exchange.text_of("stderr"),
                         RunError(error["name"], error["value"], error["traceback"]) if error else None)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C while code ran: ``execution`` holds what it had printed and how long it ran
    (the sandbox is gone), so a trace of the interrupted run can show them."""

    def __init__(self, execution: Execution) -> None:
        super().__init__()
        self.execution = execution


def open_session(
    sandbox: str = "local",
    inputs: Iterable[InputSpec] = (),
    timeout: float = DEFAULT_TIMEOUT,
    *,
    guard: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **options,
) -> Session:
    """Opens a sandbox session with the input files in its working directory.

    ``sandbox`` is "local" (bubblewrap), "docker", or "auto" (Docker when an
    engine answers and the sandbox image is built, otherwise local).
    ``max_pixels`` is PIL's decompression-bomb limit inside (``Image.open``
    of a larger image fails there as it does for inputs on the host).
    Raises ``SandboxUnavailable`` when the sandbox cannot start and
    ``InputError`` for unusable inputs; errors in model code are results.
    """
    if timeout <= 0:
        raise InputError("timeout must be a positive number of seconds")
    files = load_inputs(inputs)
    if max_pixels < 1:
        raise InputError("max_pixels must be a positive number of pixels")
    return Session(get_executor(sandbox, **options), files, float(timeout), guard, int(max_pixels))
