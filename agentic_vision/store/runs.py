"""Runs in SQLite: one row when a run starts, the rest in one transaction when it ends.

A run killed before its end stays as a row whose stop reason is ``running``:
visible in ``logs``, never half-written.  Images (inputs, what the model was
shown of them, what the code made) are stored once by content hash, so
repeated runs on one photo cost its bytes once and a trace can be rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid

from .db import transaction
from .records import InputRecord, RunSummary, StoredRun

RUNNING = "running"
MIN_PREFIX = 4


def new_id() -> str:
    return uuid.uuid4().hex


def _blob(conn: sqlite3.Connection, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    conn.execute("INSERT OR IGNORE INTO blobs (sha256, data, size) VALUES (?, ?, ?)", (digest, data, len(data)))
    return digest


def start(conn, *, run_id: str, conversation_id: str, turn_index: int, model: str, question: str,
          inputs: list[InputRecord], settings: dict) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO runs (id, started_at, conversation_id, turn_index, model, question, stop_reason, settings_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, time.time(), conversation_id, turn_index, model, question, RUNNING, json.dumps(settings)),
        )
        for position, item in enumerate(inputs):
            digest = _blob(conn, item.data)
            shown = _blob(conn, item.shown.data) if item.shown is not None else None
            conn.execute(
                "INSERT INTO run_inputs (run_id, position, name, sha256, size, origin, shown_blob, shown_width,"
                " shown_height) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, position, item.name, digest, len(item.data), item.origin, shown,
                 getattr(item.shown, "width", None), getattr(item.shown, "height", None)),
            )


def finish(conn, run_id: str, result, *, memory_used: list[dict], peak_rss_kib: int | None) -> None:
    """``result``: the loop's AgentResult, complete or interrupted."""
    timings = {"model_s": result.timings.model_s, "sandbox_s": result.timings.sandbox_s,
               "wall_s": result.timings.wall_s}
    with transaction(conn):
        conn.execute(
            "UPDATE runs SET finished_at = ?, sandbox = ?, answer = ?, stop_reason = ?, error = ?, usage_json = ?,"
            " timings_json = ?, peak_rss_kib = ? WHERE id = ?",
            (time.time(), result.sandbox, result.answer, str(result.stop_reason), result.error,
             json.dumps(result.usage.as_dict()), json.dumps(timings), peak_rss_kib, run_id),
        )
        codes, outputs = [], []
        for t, turn in enumerate(result.turns):
            conn.execute("INSERT INTO turns (run_id, position, thoughts, text, note) VALUES (?, ?, ?, ?, ?)",
                         (run_id, t, turn.thoughts, turn.text, turn.note))
            for s, step in enumerate(turn.steps):
                conn.execute(
                    "INSERT INTO steps (run_id, turn, position, code, outcome, output, duration_s)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, t, s, step.code, str(step.outcome), step.output, step.duration_s),
                )
                for i, image in enumerate(step.images):
                    source = json.dumps(image.source.as_dict()) if image.source is not None else None
                    conn.execute(
                        "INSERT INTO step_images (run_id, turn, step, position, blob, mime_type, width, height,"
                        " source_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, t, s, i, _blob(conn, image.data), image.mime_type, image.width, image.height,
                         source),
                    )
                codes.append(step.code)
                outputs.append(step.output)
        for name, (width, height) in result.input_sizes.items():
            conn.execute("UPDATE run_inputs SET input_width = ?, input_height = ? WHERE run_id = ? AND name = ?",
                         (width, height, run_id, name))
        for item in memory_used:
            conn.execute("INSERT OR IGNORE INTO run_memory (run_id, memory_id, text) VALUES (?, ?, ?)",
                         (run_id, item["id"], item["text"]))
        question = conn.execute("SELECT question FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        conn.execute("INSERT INTO runs_fts (run_id, question, answer, code, output) VALUES (?, ?, ?, ?, ?)",
                     (run_id, question, result.answer or "", "\n".join(codes), "\n".join(outputs)))


def prune(conn, max_bytes: int) -> int:
    """Deletes images, those last used by the oldest runs first, until their total is under
    ``max_bytes``; the runs stay (their traces show the image as pruned).  Returns bytes freed."""
    total = conn.execute("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0]
    if total <= max_bytes:
        return 0
    target = int(max_bytes * 0.9)  # some room, so that every next run does not prune again
    freed = 0
    with transaction(conn):
        rows = conn.execute(
            """SELECT b.sha256, b.size FROM blobs b LEFT JOIN (
                   SELECT blob AS sha, run_id FROM step_images
                   UNION ALL SELECT sha256, run_id FROM run_inputs
                   UNION ALL SELECT shown_blob, run_id FROM run_inputs WHERE shown_blob IS NOT NULL
               ) refs ON refs.sha = b.sha256 LEFT JOIN runs r ON r.id = refs.run_id
               GROUP BY b.sha256 ORDER BY coalesce(max(r.started_at), 0)"""
        ).fetchall()
        for digest, size in rows:
            if total - freed <= target:
                break
            conn.execute("DELETE FROM blobs WHERE sha256 = ?", (digest,))
            freed += size
    return freed


def blob(conn, digest: str | None) -> bytes | None:
    if digest is None:
        return None
    row = conn.execute("SELECT data FROM blobs WHERE sha256 = ?", (digest,)).fetchone()
    return row[0] if row else None


def resolve(conn, prefix: str) -> str:
    from .db import StoreError

    prefix = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{%d,32}" % MIN_PREFIX, prefix):
        raise StoreError(f"'{prefix}' is not a run id: give at least {MIN_PREFIX} of its hex digits "
                         "(see agentic-vision logs)")
    rows = conn.execute("SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                        (prefix, prefix + "g")).fetchall()
    if not rows:
        raise StoreError(f"no run with id {prefix} (see agentic-vision logs)")
    if len(rows) > 1:
        raise StoreError(f"run id {prefix} is ambiguous: give more digits")
    return rows[0][0]


SUMMARY_COLUMNS = "r.id, r.started_at, r.model, r.question, r.answer, r.stop_reason, r.conversation_id, r.turn_index, r.verdict"


def summaries(conn, *, limit: int, query: str | None = None, model: str | None = None, failed: bool = False,
              since: float | None = None, conversation_id: str | None = None, oldest_first: bool = False) -> list[RunSummary]:
    sql = f"SELECT {SUMMARY_COLUMNS} FROM runs r"
    where, args = [], []
    if query:
        sql += " JOIN runs_fts f ON f.run_id = r.id"
        where.append("runs_fts MATCH ?")
        args.append(fts_all(query))
    if model:
        where.append("(r.model = ? OR r.model LIKE ? ESCAPE '\\')")
        args += [model, _like_prefix(model)]
    if failed:
        where.append("(r.stop_reason != 'answered' OR coalesce(r.answer, '') = '')")
    if since is not None:
        where.append("r.started_at >= ?")
        args.append(since)
    if conversation_id:
        where.append("r.conversation_id = ?")
        args.append(conversation_id)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY r.started_at {'ASC' if oldest_first else 'DESC'}, r.turn_index LIMIT ?"
    args.append(limit)
    return [RunSummary(*row) for row in conn.execute(sql, args).fetchall()]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def fts_all(text: str) -> str:
    """Every word of the user's search text, each quoted (FTS5 syntax in it is taken literally)."""
    terms = words(text)
    if not terms:
        from .db import StoreError

        raise StoreError("the search text (-q) has no words to look for")
    return " ".join(f'"{t}"' for t in terms)


def load(conn, run_id: str) -> StoredRun:
    row = conn.execute(
        f"SELECT {SUMMARY_COLUMNS}, r.finished_at, r.sandbox, r.error, r.usage_json, r.timings_json,"
        " r.settings_json, r.peak_rss_kib FROM runs r WHERE r.id = ?", (run_id,)
    ).fetchone()
    summary = RunSummary(*row[:9])
    run = StoredRun(summary, row[9], row[10], row[11], json.loads(row[12]), json.loads(row[13]),
                    json.loads(row[14]), row[15])
    run.inputs = [
        {"name": n, "sha256": h, "size": s, "origin": o, "shown_blob": b, "shown_width": w, "shown_height": hh,
         "width": iw, "height": ih}
        for n, h, s, o, b, w, hh, iw, ih in conn.execute(
            "SELECT name, sha256, size, origin, shown_blob, shown_width, shown_height, input_width, input_height"
            " FROM run_inputs"
            " WHERE run_id = ? ORDER BY position", (run_id,))
    ]
    images: dict[tuple[int, int], list[dict]] = {}
    for t, s, digest, mime, w, h, source in conn.execute(
            "SELECT turn, step, blob, mime_type, width, height, source_json FROM step_images WHERE run_id = ?"
            " ORDER BY turn, step, position", (run_id,)):
        images.setdefault((t, s), []).append({"sha256": digest, "mime_type": mime, "width": w, "height": h,
                                              "source": json.loads(source) if source else None})
    steps: dict[int, list[dict]] = {}
    for t, s, code, outcome, output, duration in conn.execute(
            "SELECT turn, position, code, outcome, output, duration_s FROM steps WHERE run_id = ?"
            " ORDER BY turn, position", (run_id,)):
        steps.setdefault(t, []).append({"code": code, "outcome": outcome, "output": output, "duration_s": duration,
                                        "images": images.get((t, s), [])})
    run.turns = [
        {"thoughts": th, "text": tx, "note": no, "steps": steps.get(t, [])}
        for t, th, tx, no in conn.execute(
            "SELECT position, thoughts, text, note FROM turns WHERE run_id = ? ORDER BY position", (run_id,))
    ]
    run.memory_used = [{"id": m, "text": tx} for m, tx in conn.execute(
        "SELECT memory_id, text FROM run_memory WHERE run_id = ? ORDER BY rowid", (run_id,))]
    return run
