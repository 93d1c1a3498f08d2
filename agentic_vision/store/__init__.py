"""Every run kept: the run store (``logs``) and the user's corrections (``memory``).

On by default at ``$AGENTIC_VISION_HOME/logs.db``; off with
``AGENTIC_VISION_LOGS=off``, ``agentic-vision logs off``, ``--no-log`` or
``Agent(log=False)``.  The loop talks to it only through ``RunRecorder``,
which never lets a logging problem fail the user's run.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..paths import state_dir
from .base import RunStore
from .db import StoreError
from .records import InputRecord, MemoryItem, RunSummary, StoredRun

__all__ = ["RunStore", "StoreError", "InputRecord", "MemoryItem", "RunSummary", "StoredRun", "db_path",
           "logging_switch", "open_store", "set_logging"]

LOGS_ENV = "AGENTIC_VISION_LOGS"
MAX_ENV = "AGENTIC_VISION_LOGS_MAX_MB"
DEFAULT_MAX_MB = 512


def db_path() -> Path:
    return state_dir() / "logs.db"


def _off_marker() -> Path:
    return state_dir() / "logs-off"


def logging_switch() -> tuple[bool, str]:
    """(on, why): AGENTIC_VISION_LOGS wins over `agentic-vision logs on/off`."""
    value = os.environ.get(LOGS_ENV, "").strip().lower()
    if value in ("off", "0", "false", "no"):
        return False, f"{LOGS_ENV}={value}"
    if value in ("on", "1", "true", "yes"):
        return True, f"{LOGS_ENV}={value}"
    if value:
        raise InputError(f"{LOGS_ENV}={value!r}: use on or off")
    if _off_marker().exists():
        return False, "turned off with 'agentic-vision logs off'"
    return True, "on (the default)"


def set_logging(on: bool) -> None:
    marker = _off_marker()
    if on:
        marker.unlink(missing_ok=True)
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def max_image_bytes() -> int:
    value = os.environ.get(MAX_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_MB * 1024 * 1024
    try:
        megabytes = float(value)
    except ValueError:
        raise InputError(f"{MAX_ENV}={value!r}: give the run log's image budget in MiB, e.g. 512") from None
    if megabytes < 0:
        raise InputError(f"{MAX_ENV}={value!r}: give a size of 0 or more MiB")
    return int(megabytes * 1024 * 1024)


def open_store(path: Path | None = None) -> RunStore:
    """The embedded SQLite store; StoreError (one line) when the file is not a usable run log."""
    from .sqlite_store import SqliteStore

    return SqliteStore(path or db_path(), max_image_bytes())
