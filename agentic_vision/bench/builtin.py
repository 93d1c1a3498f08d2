"""The builtin offline suite: hand-checked questions about images that ship inside
scikit-image and matplotlib (``builtin_tasks.jsonl``, editable), plus generated
high-resolution tasks (``generate.py``).

Image names in the data file are ``skimage:NAME`` (scikit-image's data
directory) or ``mpl:NAME`` (matplotlib's ``sample_data``).  Without
scikit-image the tasks that need its images are left out, with one note.
"""

from __future__ import annotations

from pathlib import Path

from . import generate
from .generate import generate_tasks
from .samples import sample_path
from .tasks import MissingImage, Task, load_jsonl

DATA_FILE = Path(__file__).with_name("builtin_tasks.jsonl")


def resolve(name: str, base: Path) -> Path:
    source, sep, rest = name.partition(":")
    if not sep:
        return base / name
    path = sample_path(source, rest)
    if path is None:
        raise MissingImage(source)
    return path


def load_checked(skipped: list | None = None) -> list[Task]:
    return load_jsonl(DATA_FILE, resolve=resolve, skipped=skipped)


def load_builtin(cache_dir: Path, seed: int = 0, part: str = "all") -> tuple[list[Task], list[str]]:
    """(tasks, notes): the hand-checked tasks, then the generated ones."""
    notes, skipped, tasks = [], [], []
    if part in ("all", "checked"):
        tasks += load_checked(skipped)
        if skipped:
            sources = sorted({why for _, why in skipped})
            names = {"skimage": "scikit-image", "mpl": "matplotlib"}
            notes.append(f"{' and '.join(names.get(s, s) for s in sources)} not installed: {len(skipped)} "
                         "hand-checked tasks that use its images are left out")
    if part in ("all", "generated"):
        generated, more = generate_tasks(cache_dir, seed)
        tasks += generated
        notes += more
    expected = (len(tasks) + len(skipped) if part != "generated" else len(tasks)) + \
        (sum(generate.COUNTS.values()) - len(generated) if part != "checked" else 0)
    if len(tasks) < expected:  # said first: a run of 3 tasks out of 48 must not pass for the suite
        notes.insert(0, f"only {len(tasks)} of the {expected} builtin tasks can run here: "
                        f"pip install 'agentic-vision[bench]' (scikit-image, matplotlib) brings the other "
                        f"{expected - len(tasks)}")
    return tasks, notes
