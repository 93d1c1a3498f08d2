"""``--suite NAME_OR_PATH`` -> a list of tasks.

* ``builtin`` (also ``builtin-checked``, ``builtin-generated``): the bundled suite;
* a ``.jsonl`` file: the task format (``tasks.py``);
* a ``.tsv`` / ``.parquet`` file: HR-Bench;
* a directory: V* Bench (category folders with per-image JSON, or
  ``test_questions.jsonl``), or a directory holding ``tasks.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .builtin import load_builtin
from .tasks import Task, load_hrbench, load_jsonl, load_vstar, looks_like_vstar

BUILTIN = {"builtin": "all", "builtin-checked": "checked", "builtin-generated": "generated"}


@dataclass
class Suite:
    name: str
    tasks: list[Task]
    notes: list[str] = field(default_factory=list)


def load_suite(name_or_path: str, cache_dir: Path, *, seed: int = 0, limit: int | None = None) -> Suite:
    cache_dir = Path(cache_dir)
    if name_or_path in BUILTIN:
        tasks, notes = load_builtin(cache_dir, seed, BUILTIN[name_or_path])
        if not tasks:
            raise InputError(notes[0])
        return Suite(name_or_path, tasks[:limit] if limit is not None else tasks, notes)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise InputError(f"no suite named {name_or_path!r} and no such file or directory "
                         f"(suites: {', '.join(BUILTIN)}; or a .jsonl, .tsv, .parquet file or a V* Bench directory)")
    suffix = path.suffix.lower()
    if path.is_dir():
        if looks_like_vstar(path):
            tasks = load_vstar(path)
        elif (path / "tasks.jsonl").is_file():
            tasks = load_jsonl(path / "tasks.jsonl")
        else:
            raise InputError(f"{path}: neither a V* Bench copy nor a directory with tasks.jsonl")
    elif suffix in (".tsv", ".parquet"):
        tasks = load_hrbench(path, cache_dir, limit=limit)
    elif suffix in (".jsonl", ".json"):
        tasks = load_jsonl(path)
    else:
        raise InputError(f"{path}: unknown suite format (use .jsonl, .tsv or .parquet, or a directory)")
    if not tasks:
        raise InputError(f"{path}: the suite has no tasks")
    return Suite(path.name, tasks[:limit] if limit is not None else tasks)
