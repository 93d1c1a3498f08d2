"""Opening the run log's SQLite file: WAL mode, our own schema, a refusal of anything else.

Several processes may write at once (concurrent ``ask`` runs): WAL lets readers
and one writer work together, ``busy_timeout`` makes a second writer wait for
the first instead of failing, and every write is one ``BEGIN IMMEDIATE``
transaction, so a process killed at any point leaves the file consistent.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 30_000


class StoreError(InputError):
    """The run log cannot be used as it is; the message names the file and what to do."""


def _refuse(path: Path, why: str) -> StoreError:
    return StoreError(f"{path} {why}: move it away (it is never replaced) or set AGENTIC_VISION_HOME "
                      "to another folder, or turn logging off with AGENTIC_VISION_LOGS=off")


def connect(path: Path) -> sqlite3.Connection:
    """The log at ``path``, created and migrated as needed; StoreError when it is not ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        try:
            # One statement, so one snapshot: another process may be creating the log meanwhile.
            app_id, version, tables = conn.execute(
                "SELECT (SELECT application_id FROM pragma_application_id),"
                " (SELECT user_version FROM pragma_user_version),"
                " (SELECT count(*) FROM sqlite_master)").fetchone()
        except sqlite3.DatabaseError as exc:  # "file is not a database", a torn header
            raise _refuse(path, f"is not a readable run log ({exc})") from None
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise _refuse(path, "is an SQLite file of another program")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path} was written by a newer agentic-vision (schema {version}, this one knows "
                             f"{SCHEMA_VERSION}): upgrade agentic-vision, or set AGENTIC_VISION_HOME to another folder")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        if version < SCHEMA_VERSION:
            _migrate(conn)
        return conn
    except BaseException:
        conn.close()
        raise


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switches a new log to WAL (the mode is kept in the file, so an existing log is left as it is).

    The switch needs the file to itself, and when several processes open the same new
    log at once SQLite answers "locked" at once rather than calling the busy handler;
    so the wait is here, bounded like every other wait on the log."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _migrate(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        # Read again inside the write lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], version + 1):
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


@contextmanager
def transaction(conn: sqlite3.Connection):
    """One write transaction, taken at once (BEGIN IMMEDIATE) so that it never deadlocks
    against another writer; rolled back on any error, KeyboardInterrupt included."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
