"""The embedded run store: one SQLite file, ``$AGENTIC_VISION_HOME/logs.db``."""

from __future__ import annotations

import threading
from pathlib import Path

from . import memory as _memory
from . import runs as _runs
from .base import RunStore
from .db import connect, transaction


class SqliteStore(RunStore):
    def __init__(self, path: Path, max_image_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.max_image_bytes = max_image_bytes
        self.conn = connect(self.path)
        self._lock = threading.Lock()  # one connection, used by a chat's thread and a caller's

    def close(self) -> None:
        self.conn.close()

    def start_run(self, **run) -> None:
        with self._lock:
            _runs.start(self.conn, **run)

    def finish_run(self, run_id, result, *, memory_used, peak_rss_kib) -> None:
        with self._lock:
            _runs.finish(self.conn, run_id, result, memory_used=memory_used, peak_rss_kib=peak_rss_kib)
            if self.max_image_bytes is not None:
                _runs.prune(self.conn, self.max_image_bytes)

    def runs(self, **query):
        with self._lock:
            return _runs.summaries(self.conn, **query)

    def resolve_run(self, prefix):
        with self._lock:
            return _runs.resolve(self.conn, prefix)

    def run(self, run_id):
        with self._lock:
            return _runs.load(self.conn, run_id)

    def blob(self, sha256):
        with self._lock:
            return _runs.blob(self.conn, sha256)

    def set_verdict(self, run_id, verdict) -> None:
        with self._lock, transaction(self.conn):
            self.conn.execute("UPDATE runs SET verdict = ? WHERE id = ?", (verdict, run_id))

    def add_memory(self, text, **item):
        with self._lock:
            return _memory.add(self.conn, text, **item)

    def memories(self):
        with self._lock:
            return _memory.items(self.conn)

    def resolve_memory(self, prefix):
        with self._lock:
            return _memory.resolve(self.conn, prefix)

    def memory(self, item_id):
        with self._lock:
            return _memory.get(self.conn, item_id)

    def remove_memory(self, item_id) -> None:
        with self._lock:
            _memory.remove(self.conn, item_id)

    def edit_memory(self, item_id, text) -> None:
        with self._lock:
            _memory.edit(self.conn, item_id, text)

    def relevant_memories(self, **query):
        with self._lock:
            return _memory.relevant(self.conn, **query)
