"""The run store's tables, and the migrations that bring an older file up to date.

``PRAGMA user_version`` is the schema version; ``PRAGMA application_id`` marks
the file as ours, so a foreign SQLite file at the same path is refused, never
written into or replaced.  Each migration runs in one transaction.
"""

from __future__ import annotations

APPLICATION_ID = 0x41564C47  # "AVLG"

MIGRATIONS: list[str] = [
    # 1: runs, their turns and steps, images stored once by content hash, memory.
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        conversation_id TEXT NOT NULL,
        turn_index INTEGER NOT NULL DEFAULT 0,
        model TEXT NOT NULL,
        sandbox TEXT,
        question TEXT NOT NULL,
        answer TEXT,
        stop_reason TEXT NOT NULL,  -- 'running' until the run ends
        error TEXT,
        usage_json TEXT NOT NULL DEFAULT '{}',
        timings_json TEXT NOT NULL DEFAULT '{}',
        settings_json TEXT NOT NULL DEFAULT '{}',
        peak_rss_kib INTEGER,
        verdict TEXT  -- 'right' / 'wrong' from feedback
    );
    CREATE INDEX runs_started ON runs(started_at);
    CREATE INDEX runs_conversation ON runs(conversation_id, turn_index);
    CREATE TABLE run_inputs (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        origin TEXT,  -- the path or URL the user gave, when there was one
        shown_blob TEXT,  -- the image as the model saw it (downscaled), when shown
        shown_width INTEGER,
        shown_height INTEGER,
        PRIMARY KEY (run_id, position)
    );
    CREATE TABLE turns (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        thoughts TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, position)
    );
    CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        turn INTEGER NOT NULL,
        position INTEGER NOT NULL,
        code TEXT NOT NULL,
        outcome TEXT NOT NULL,
        output TEXT NOT NULL,
        duration_s REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, turn, position)
    );
    CREATE TABLE step_images (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        turn INTEGER NOT NULL,
        step INTEGER NOT NULL,
        position INTEGER NOT NULL,
        blob TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        PRIMARY KEY (run_id, turn, step, position)
    );
    CREATE TABLE blobs (
        sha256 TEXT PRIMARY KEY,
        data BLOB NOT NULL,
        size INTEGER NOT NULL
    );
    CREATE VIRTUAL TABLE runs_fts USING fts5(run_id UNINDEXED, question, answer, code, output);
    CREATE TABLE memory (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        text TEXT NOT NULL,
        scope TEXT NOT NULL DEFAULT 'global',  -- 'global', 'dir:/abs/path' or 'tag:NAME'
        run_id TEXT,  -- the run it corrects (feedback), kept when that run is pruned
        verdict TEXT,
        context TEXT NOT NULL DEFAULT ''  -- the corrected run's question and input names
    );
    CREATE VIRTUAL TABLE memory_fts USING fts5(memory_id UNINDEXED, text, context);
    CREATE TABLE run_memory (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        memory_id TEXT NOT NULL,
        text TEXT NOT NULL,  -- as it was given to the model
        PRIMARY KEY (run_id, memory_id)
    );
    """,
    # 2: where each shown image came from (provenance: the input and region), as JSON.
    """
    ALTER TABLE step_images ADD COLUMN source_json TEXT;
    ALTER TABLE run_inputs ADD COLUMN input_width INTEGER;
    ALTER TABLE run_inputs ADD COLUMN input_height INTEGER
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
