"""What a chat writes to the run store and reads from its memory, as one small object.

The user's run comes first: a log that cannot be opened or written (a read-only
home, a full disk, a foreign file) is one warning per process, and the run goes
on unlogged.  Logging problems never raise into the loop.
"""

from __future__ import annotations

import logging
import os
import resource
import sqlite3
import uuid
from pathlib import Path

from ..errors import AgenticVisionError
from .base import RunStore
from .memory import prompt_section
from .records import InputRecord, MemoryItem

log = logging.getLogger("agentic_vision.store")
_said: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning("agentic-vision: %s", message)


class RunRecorder:
    def __init__(self, *, log_runs: bool, use_memory: bool, memory_items: int, memory_chars: int,
                 tags: tuple[str, ...] = (), store: RunStore | None = None) -> None:
        self.log_runs = log_runs
        self.use_memory = use_memory and memory_items > 0
        self.memory_items = memory_items
        self.memory_chars = memory_chars
        self.tags = tuple(tags)
        self._store = store
        self._opened = store is not None
        self.conversation_id = uuid.uuid4().hex
        self.turns = 0
        self.memory_given: dict[str, MemoryItem] = {}

    # -- the store, opened once, when first needed ---------------------------------

    def store(self) -> RunStore | None:
        if not self._opened:
            self._opened = True
            from . import logging_switch, open_store

            try:
                on, _ = logging_switch()
                self.log_runs = self.log_runs and on
                if self.log_runs or self.use_memory:
                    self._store = open_store()
            except AgenticVisionError as exc:
                warn_once(f"{exc}; runs are not logged and no memory is used")
            except (OSError, sqlite3.Error) as exc:
                warn_once(f"cannot open the run log ({_reason(exc)}): runs are not logged and no memory is used"
                          " (AGENTIC_VISION_LOGS=off silences this)")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- memory ---------------------------------------------------------------------

    def memories_for(self, question: str, names: list[str], sources: list) -> list[MemoryItem]:
        """Items not given yet in this chat that fit this turn."""
        if not self.use_memory or self.store() is None:
            return []
        folders = _folders(sources)
        try:
            picked = self._store.relevant_memories(
                question=question, names=names, folders=folders, tags=list(self.tags), limit=self.memory_items,
                char_budget=self.memory_chars, exclude=set(self.memory_given))
        except sqlite3.Error as exc:
            warn_once(f"cannot read memory from the run log ({_reason(exc)}): this run uses none")
            return []
        budget = self.memory_items - len(self.memory_given)
        picked = picked[:max(0, budget)]
        for item in picked:
            self.memory_given[item.id] = item
        return picked

    @staticmethod
    def section(items: list[MemoryItem]) -> str:
        return prompt_section(items) if items else ""

    # -- runs -----------------------------------------------------------------------

    def begin(self, *, model: str, question: str, files, shown: dict, sources: list, settings: dict) -> str | None:
        """Records a run's start; its id, or None when it is not logged."""
        if not self.log_runs:
            return None
        if self.store() is None or not self.log_runs:  # opening it reads the on/off switch too
            return None
        origins = _origins(sources)
        inputs = [InputRecord(f.name, f.data, origins.get(f.name), shown.get(f.name)) for f in files]
        run_id = uuid.uuid4().hex
        try:
            self._store.start_run(run_id=run_id, conversation_id=self.conversation_id, turn_index=self.turns,
                                  model=model, question=question, inputs=inputs, settings=settings)
        except (OSError, sqlite3.Error) as exc:
            warn_once(f"cannot write the run log {self._store.location} ({_reason(exc)}): this run is not logged")
            return None
        finally:
            self.turns += 1
        return run_id

    def end(self, run_id: str | None, result, memory_used: list[dict]) -> None:
        if run_id is None or self._store is None:
            return
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        try:
            self._store.finish_run(run_id, result, memory_used=memory_used, peak_rss_kib=peak)
        except (OSError, sqlite3.Error) as exc:
            warn_once(f"cannot write the run log {self._store.location} ({_reason(exc)}): this run's end is not logged")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__


def _paths(sources: list) -> list[Path]:
    from ..inputs.urls import is_url

    return [Path(s) for s in sources if isinstance(s, (str, os.PathLike)) and not is_url(s)]


def _folders(sources: list) -> list[Path]:
    folders = []
    for path in _paths(sources):
        folders.append(path if path.is_dir() else path.parent)
    return folders


def _origins(sources: list) -> dict[str, str]:
    """Input name -> the path or URL the user gave, for the names a plain path or URL keeps."""
    from ..inputs.urls import is_url

    origins: dict[str, str] = {}
    for source in sources:
        if isinstance(source, str) and is_url(source):
            origins.setdefault(source.rstrip("/").rsplit("/", 1)[-1].split("?")[0], source)
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            for item in (sorted(path.iterdir()) if path.is_dir() else [path]):
                origins.setdefault(item.name, str(item.resolve()))
    return origins
