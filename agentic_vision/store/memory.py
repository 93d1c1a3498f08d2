"""Corrections the user gave (``feedback``, ``remember``), and which of them a new run gets.

An item has a scope: ``global``, ``dir:/abs/path`` (runs whose inputs are under
that folder) or ``tag:NAME`` (runs given that tag).  A run gets the items of
its folders and tags, then global items whose words meet the run's question
and input names (FTS5, ranked by bm25, over the item's text and the question
of the run it corrected), within a count and a character budget.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from .db import StoreError, transaction
from .records import MemoryItem
from .runs import MIN_PREFIX, words

# Words too common to say whether a note is about this question.
STOPWORDS = frozenset("""
a about above after all also am an and any are as at be been before being below between both but by can
could did do does doing down during each few for from further had has have having he her here hers him his
how i if in into is it its itself just me more most my no nor not now of off on once only or other our out
over own same she should so some such than that the their them then there these they this those through to
too under until up very was we were what when where which while who whom why will with would you your yours
image images photo picture png jpg jpeg pdf file show tell many much please give find look see one two
""".split())

COLUMNS = "id, created_at, text, scope, run_id, verdict, context"


def normalise_scope(scope: str | None) -> str:
    """'global', a folder (made absolute: 'dir:/abs'), or 'tag:NAME'."""
    if not scope or scope == "global":
        return "global"
    if scope.startswith("tag:"):
        name = scope[4:].strip()
        if not re.fullmatch(r"[\w.-]+", name):
            raise StoreError(f"bad tag in --scope {scope!r}: use letters, digits, '.', '-' or '_'")
        return f"tag:{name}"
    folder = Path(scope[4:] if scope.startswith("dir:") else scope).expanduser()
    if not folder.is_dir():
        raise StoreError(f"--scope {scope!r} is not a folder: give global, a folder, or tag:NAME")
    return f"dir:{folder.resolve()}"


def add(conn, text: str, scope: str = "global", run_id: str | None = None, verdict: str | None = None,
        context: str = "") -> MemoryItem:
    text = text.strip()
    if not text:
        raise StoreError("the note is empty: say what the model should do differently")
    item = MemoryItem(uuid.uuid4().hex, time.time(), text, scope, run_id, verdict, context)
    with transaction(conn):
        conn.execute(f"INSERT INTO memory ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (item.id, item.created_at, item.text, item.scope, item.run_id, item.verdict, item.context))
        conn.execute("INSERT INTO memory_fts (memory_id, text, context) VALUES (?, ?, ?)",
                     (item.id, item.text, item.context))
    return item


def items(conn) -> list[MemoryItem]:
    return [MemoryItem(*row) for row in conn.execute(f"SELECT {COLUMNS} FROM memory ORDER BY created_at DESC")]


def resolve(conn, prefix: str) -> str:
    prefix = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{%d,32}" % MIN_PREFIX, prefix):
        raise StoreError(f"'{prefix}' is not a memory id: give at least {MIN_PREFIX} of its hex digits "
                         "(see agentic-vision memory list)")
    rows = conn.execute("SELECT id FROM memory WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")).fetchall()
    if not rows:
        raise StoreError(f"no memory item with id {prefix} (see agentic-vision memory list)")
    if len(rows) > 1:
        raise StoreError(f"memory id {prefix} is ambiguous: give more digits")
    return rows[0][0]


def get(conn, item_id: str) -> MemoryItem:
    return MemoryItem(*conn.execute(f"SELECT {COLUMNS} FROM memory WHERE id = ?", (item_id,)).fetchone())


def remove(conn, item_id: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM memory WHERE id = ?", (item_id,))
        conn.execute("DELETE FROM memory_fts WHERE memory_id = ?", (item_id,))


def edit(conn, item_id: str, text: str) -> None:
    text = text.strip()
    if not text:
        raise StoreError("the new text is empty: use 'agentic-vision memory rm' to delete an item")
    with transaction(conn):
        conn.execute("UPDATE memory SET text = ? WHERE id = ?", (text, item_id))
        conn.execute("UPDATE memory_fts SET text = ? WHERE memory_id = ?", (text, item_id))


def query_terms(question: str, names: list[str]) -> list[str]:
    """The words that say what a run is about: its question's and its inputs' names' (stems split
    at punctuation), without common words; at most 32."""
    seen: dict[str, None] = {}
    for word in words(question) + [w for name in names for w in words(Path(name).stem.replace("_", " "))]:
        if len(word) >= 3 and word not in STOPWORDS and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)[:32]


def relevant(conn, *, question: str, names: list[str], folders: list[Path], tags: list[str], limit: int,
             char_budget: int, exclude: set[str] = frozenset()) -> list[MemoryItem]:
    """The items a run with this question, these inputs (names, the folders they are in) and
    these tags gets: scoped items that match first (newest first), then global items by relevance."""
    if limit <= 0 or char_budget <= 0:
        return []
    chosen: list[MemoryItem] = []
    scoped = [MemoryItem(*row) for row in conn.execute(
        f"SELECT {COLUMNS} FROM memory WHERE scope != 'global' ORDER BY created_at DESC")]
    resolved = [folder.resolve() for folder in folders]
    for item in scoped:
        if item.scope.startswith("tag:") and item.scope[4:] in tags:
            chosen.append(item)
        elif item.scope.startswith("dir:"):
            root = Path(item.scope[4:])
            if any(folder == root or root in folder.parents for folder in resolved):
                chosen.append(item)
    terms = query_terms(question, names)
    if terms:
        match = " OR ".join(f'"{t}"' for t in terms)
        rows = conn.execute(
            f"SELECT {', '.join('m.' + c.strip() for c in COLUMNS.split(','))} FROM memory_fts f"
            " JOIN memory m ON m.id = f.memory_id WHERE memory_fts MATCH ? AND m.scope = 'global'"
            " ORDER BY bm25(memory_fts), m.created_at DESC LIMIT ?", (match, limit * 4)).fetchall()
        chosen += [MemoryItem(*row) for row in rows]
    picked, used = [], 0
    for item in chosen:
        if item.id in exclude or any(p.id == item.id for p in picked):
            continue
        if used + len(item.text) > char_budget:
            continue
        picked.append(item)
        used += len(item.text)
        if len(picked) >= limit:
            break
    return picked


def prompt_section(picked: list[MemoryItem]) -> str:
    """The short, labelled section a run's system instruction (or a later chat turn) gets."""
    lines = ["Notes from the user's corrections of earlier runs (follow them where they apply):"]
    for item in picked:
        about = ""
        if item.context:
            question = item.context.split("\n", 1)[0]
            about = f" (about an earlier question: {question!r}" + (f", answer judged {item.verdict}" if item.verdict else "") + ")"
        lines.append(f"- {item.text}{about}")
    return "\n".join(lines)
