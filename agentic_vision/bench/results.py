"""``DIR/results.jsonl``: one JSON object per finished (task, mode), never lost, never twice.

Each record is written with one ``write`` on a file opened for appending,
then flushed to disk (``fsync``) before the next one, so a run killed with
``kill -9`` keeps every result it finished.  The only damage a kill can do
is a torn last line: readers discard it, and a resumed run cuts it off
before appending.  A record is identified by ``(task_id, mode)``; the first
record of a pair wins if a file ever holds two.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

RESULTS_NAME = "results.jsonl"
RECORD_VERSION = 1


def key_of(record: dict) -> tuple[str, str]:
    return str(record["task_id"]), str(record["mode"])


@dataclass
class Loaded:
    records: list[dict] = field(default_factory=list)
    torn_bytes: int = 0  # length of an unfinished last line
    good_length: int = 0  # bytes up to the end of the last complete line


def read_results(path: Path) -> Loaded:
    path = Path(path)
    loaded = Loaded()
    if not path.is_file():
        return loaded
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a torn line
    loaded.good_length = end
    loaded.torn_bytes = len(data) - end
    seen = set()
    for line in data[:end].split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = key_of(record)
        except (ValueError, KeyError, TypeError):
            continue  # a complete line that is not a record (never written by us)
        if key in seen:
            continue  # a pair recorded twice: the first one counts
        seen.add(key)
        loaded.records.append(record)
    return loaded


class ResultsFile:
    """The append side; ``append`` is safe to call from several threads."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        existing = read_results(self.path)
        if self.path.exists() and self.path.stat().st_size and not resume:
            raise InputError(f"{self.path} already holds results: pass --resume to continue that run, "
                             "or choose another --out")
        self.previous = existing
        if existing.torn_bytes:
            with open(self.path, "r+b") as handle:  # cut off the torn tail before appending after it
                handle.truncate(existing.good_length)
                handle.flush()
                os.fsync(handle.fileno())
        new = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if new:
            _fsync_dir(self.path.parent)

    def done(self) -> set[tuple[str, str]]:
        return {key_of(r) for r in self.previous.records}

    def append(self, record: dict) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "ResultsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
