"""The run store's interface: what the loop and the commands need, nothing about SQL.

The embedded implementation is SQLite (``SqliteStore``); a server database can
implement the same methods without the loop or the commands changing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from .records import InputRecord, MemoryItem, RunSummary, StoredRun


class RunStore(ABC):
    location: str  # shown by `logs path` and in messages

    # -- runs
    @abstractmethod
    def start_run(self, *, run_id: str, conversation_id: str, turn_index: int, model: str, question: str,
                  inputs: list[InputRecord], settings: dict) -> None: ...

    @abstractmethod
    def finish_run(self, run_id: str, result, *, memory_used: list[dict], peak_rss_kib: int | None) -> None: ...

    @abstractmethod
    def runs(self, *, limit: int = 20, query: str | None = None, model: str | None = None, failed: bool = False,
             since: float | None = None, conversation_id: str | None = None,
             oldest_first: bool = False) -> list[RunSummary]: ...

    @abstractmethod
    def resolve_run(self, prefix: str) -> str: ...

    @abstractmethod
    def run(self, run_id: str) -> StoredRun: ...

    @abstractmethod
    def blob(self, sha256: str | None) -> bytes | None: ...

    @abstractmethod
    def set_verdict(self, run_id: str, verdict: str | None) -> None: ...

    # -- memory
    @abstractmethod
    def add_memory(self, text: str, *, scope: str = "global", run_id: str | None = None,
                   verdict: str | None = None, context: str = "") -> MemoryItem: ...

    @abstractmethod
    def memories(self) -> list[MemoryItem]: ...

    @abstractmethod
    def resolve_memory(self, prefix: str) -> str: ...

    @abstractmethod
    def memory(self, item_id: str) -> MemoryItem: ...

    @abstractmethod
    def remove_memory(self, item_id: str) -> None: ...

    @abstractmethod
    def edit_memory(self, item_id: str, text: str) -> None: ...

    @abstractmethod
    def relevant_memories(self, *, question: str, names: list[str], folders: list[Path], tags: list[str],
                          limit: int, char_budget: int, exclude: set[str] = frozenset()) -> list[MemoryItem]: ...

    def close(self) -> None:
        pass
