"""Benchmark episodes on a Ray cluster: ``agentic-vision bench --ray ADDRESS``.

Each episode is a Ray task.  What it is given is plain data: the run's
``RunConfig`` (model name, sandbox kind, limits, the driver's model settings),
the task without its file paths, and the task's image bytes as objects in
Ray's object store, put there once by the driver.  A node fetches an object
the first time one of its tasks needs it and keeps it while the run holds
it, so image bytes travel once per node, not once per episode; the worker
writes them to a node-local folder keyed by their hash.  No shared
filesystem is assumed.

Ray reuses a worker process for later tasks of the same run, so the model
client and the warm sandbox pool are built once per worker process (see
``_runner``), not once per episode.  Each task reserves ``cpus_per_episode``
CPUs (and one unit of a custom resource when one is named), which is how a
node's sandbox capacity is respected.

The driver alone appends to ``results.jsonl`` (through the same ``Collector``
as a local run), so ``--resume`` after the driver is killed loses and
repeats nothing.  A worker process or node that dies has its episode retried
by Ray (``retries`` times); an episode that still fails is recorded with its
reason.  Ctrl-C stops submitting, cancels what runs and keeps what finished.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..errors import InputError, SandboxUnavailable
from .config import RayOptions, RunConfig
from ..values import LOCAL_MODES, StopReason
from .modes import Episode
from .results import RESULTS_NAME, ResultsFile
from .runner import Collector, make_record, pending_pairs, play, where_it_ran
from .tasks import Task

RAY_HINT = "Ray is not installed: pip install 'agentic-vision[ray]'"
INPUTS_DIR = "agentic-vision-bench-inputs"


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError(RAY_HINT) from None
    return ray


def _endpoint(address: str) -> tuple[str, int] | None:
    """host and port of an explicit address (host:port or ray://host:port); None for "auto"."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Ray retries an address that answers nothing for a minute and more; say so in seconds instead."""
    endpoint = _endpoint(address)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"no Ray cluster answers at {address} ({reason}): start one with 'ray start --head', "
                         "or check --ray / RAY_ADDRESS") from None


def connect(options: RayOptions, config: RunConfig):
    """``ray.init`` with the driver's model settings carried to every worker; one line when it fails."""
    ray = import_ray()
    check_reachable(options.address)
    try:
        ray.init(address=options.address, runtime_env={"env_vars": dict(config.env)}, log_to_driver=False,
                 logging_level="ERROR", configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot join the Ray cluster at {options.address}: {detail} "
                         "(start one with 'ray start --head', or check --ray / RAY_ADDRESS)") from None
    return ray


def check_fits(ray, options: RayOptions) -> None:
    """An episode no live node can take would wait for ever (Ray queues it): say so instead."""
    nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
    if not any(n.get("CPU", 0) >= options.cpus_per_episode for n in nodes):
        most = max((n.get("CPU", 0) for n in nodes), default=0)
        raise InputError(f"--ray-cpus {options.cpus_per_episode:g}: no node of the Ray cluster has that many CPUs "
                         f"(the most is {most:g}); ask for fewer")
    if options.resource and not any(n.get(options.resource, 0) >= 1 for n in nodes):
        raise InputError(f"--ray-resource {options.resource}: no node of the Ray cluster has that resource "
                         f"(start nodes with --resources '{{\"{options.resource}\": N}}')")


def capacity(ray, options: RayOptions) -> int:
    """How many episodes the cluster can run at once with these options (at least 1)."""
    resources = ray.cluster_resources()
    slots = resources.get("CPU", 0) / options.cpus_per_episode if options.cpus_per_episode else float("inf")
    if options.resource:
        slots = min(slots, resources.get(options.resource, 0))
    return max(1, int(slots)) if slots != float("inf") else 1


# -- the worker's side ----------------------------------------------------------------

_runners: dict = {}
_runners_lock = threading.Lock()


def _runner(config: RunConfig):
    """This worker process's runner for ``config``: one model client and warm pool for all its episodes."""
    with _runners_lock:
        runner = _runners.get(config)
        if runner is None:
            runner = _runners[config] = config.build_runner()
        return runner


def _materialise(files: list[tuple[str, str]], blobs: tuple[bytes, ...]) -> list[Path]:
    """Writes the task's images into this node's input folder (once per content) and returns their paths."""
    root = Path(tempfile.gettempdir()) / INPUTS_DIR
    paths = []
    for (name, digest), data in zip(files, blobs):
        folder = root / digest
        path = folder / name
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, path)  # atomic: another worker on this node may write the same file
        paths.append(path)
    return paths


def play_remote(config: RunConfig, task: Task, index: int, mode: str, files: list[tuple[str, str]],
                *blobs: bytes) -> tuple[dict, str | None]:
    """One episode on a worker (the body of the Ray task); the blobs come resolved from the object store."""
    import ray

    runner = _runner(config)
    task = replace(task, images=_materialise(files, blobs))
    sandbox = config.sandbox if mode in LOCAL_MODES else None
    if sandbox:
        runner.ensure_warm()  # this worker's first local episode does not time a sandbox start
    node = where_it_ran(sandbox, ray.get_runtime_context().get_node_id(), config.docker_host)
    return play(runner, task, mode, index=index, suite=config.suite, model=runner.model.name,
                sandbox=config.sandbox, traces=config.traces, node=node)


# -- the driver's side ----------------------------------------------------------------


class _Inputs:
    """Each image file put into the object store once per run, however many episodes use it."""

    def __init__(self, ray) -> None:
        self.ray, self.refs = ray, {}

    def of(self, task: Task) -> tuple[list[tuple[str, str]], list]:
        files, refs = [], []
        for path in task.images:
            key = str(Path(path).resolve())
            if key not in self.refs:
                try:
                    data = Path(path).read_bytes()
                except OSError as exc:
                    raise InputError(f"cannot read the image {path} of task {task.id}: {exc.strerror}") from None
                self.refs[key] = (Path(path).name, hashlib.sha256(data).hexdigest()[:32], self.ray.put(data))
            name, digest, ref = self.refs[key]
            files.append((name, digest))
            refs.append(ref)
        return files, refs


def _failed(task: Task, mode: str, index: int, config: RunConfig, reason: str, stop: str) -> dict:
    episode = Episode(stop_reason=stop, error=reason)
    record = make_record(task, mode, episode, model=config.model, sandbox=config.sandbox, suite=config.suite,
                         latency_s=0.0, trace=None, index=index)
    record["node"] = {"id": None, "hostname": None, "sandbox": None, "docker_engine": None}
    return record


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def run_pairs_on_ray(tasks: list[Task], modes: list[str], config: RunConfig, options: RayOptions, out_dir: Path, *,
                     resume: bool = False, concurrency: int | None = None,
                     on_record: Callable[[dict, int, int], None] | None = None,
                     say: Callable[[str], None] = lambda text: None) -> list[dict]:
    """Runs every (task, mode) pair not yet in ``out_dir/results.jsonl`` on the cluster; returns all records.

    Joins the cluster for this run, unless this process is connected already
    (then the caller's connection, and the warm workers it holds, are kept).
    """
    ray = import_ray()
    joined = not ray.is_initialized()
    if joined:
        connect(options, config)
    from ray.exceptions import RayError, RayTaskError, TaskCancelledError

    try:
        check_fits(ray, options)
        slots = concurrency or capacity(ray, options)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        say(f"ray: {len(nodes)} node(s), {slots} episode(s) at once")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        resources = {options.resource: 1} if options.resource else None
        remote = ray.remote(play_remote).options(num_cpus=options.cpus_per_episode, resources=resources,
                                                 max_retries=options.retries, retry_exceptions=False)
        with ResultsFile(out_dir / RESULTS_NAME, resume=resume) as store:
            records = list(store.previous.records)
            todo = pending_pairs(tasks, modes, store.done())
            pending = iter(todo)
            position = {task.id: i for i, task in enumerate(tasks)}
            collector = Collector(store, out_dir, records, len(todo), on_record)
            inputs = _Inputs(ray)
            running: dict = {}

            def refill() -> None:
                while len(running) < slots:
                    item = next(pending, None)
                    if item is None:
                        return
                    task, mode = item
                    files, refs = inputs.of(task)
                    ref = remote.remote(config, replace(task, images=[]), position[task.id], mode, files, *refs)
                    running[ref] = item

            def collect(ref) -> None:
                task, mode = running.pop(ref)
                index = position[task.id]
                try:
                    record, html = ray.get(ref)
                except RayTaskError as exc:
                    if isinstance(exc.cause, SandboxUnavailable):
                        raise SandboxUnavailable(f"{exc.cause} (on a Ray worker)") from None
                    record, html = _failed(task, mode, index, config, _first_line(exc.cause or exc),
                                           StopReason.HARNESS_ERROR), None
                except TaskCancelledError:
                    return
                except RayError as exc:  # its worker or node died, after Ray's retries
                    record, html = _failed(task, mode, index, config, f"{type(exc).__name__}: {_first_line(exc)}",
                                           StopReason.WORKER_ERROR), None
                collector.add(record, html)

            try:
                refill()
                while running:
                    ready, _ = ray.wait(list(running), num_returns=1)
                    for ref in ready:
                        collect(ref)
                    refill()
            except BaseException:
                # Stop submitting, cancel what runs, keep what already finished.
                finished, _ = ray.wait(list(running), num_returns=len(running), timeout=0) if running else ([], [])
                for ref in list(running):
                    if ref not in finished:
                        ray.cancel(ref, force=True)
                        running.pop(ref)
                for ref in finished:
                    try:
                        collect(ref)
                    except BaseException:
                        continue
                raise
        return records
    finally:
        if joined:
            ray.shutdown()
