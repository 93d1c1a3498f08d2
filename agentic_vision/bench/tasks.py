"""Benchmark tasks and the loaders for the formats we read.

**The task format** (JSONL, one task per line; a contract)::

    {"id": "coins-count", "image": "coins.png", "question": "How many coins are there?",
     "answer": 24, "match": "number"}
    {"id": "suit", "images": ["a.png", "b.png"], "question": "What colour is the suit?",
     "answer": "orange", "match": "choice", "options": ["orange", "blue", "white"]}

``image`` / ``images`` are paths relative to the JSONL file; ``match`` is
``exact`` (the default), ``contains``, ``number`` (with an optional
``tolerance``) or ``choice`` (with ``options``; the answer is an option's text
or its letter).  ``evidence_boxes`` (optional) says where the answer is:
``[{"image": "a.png", "box": [x0, y0, x1, y1]}, ...]`` in the image's pixels
(``image`` may be left out for a task with one image); the report then says
whether each episode's shown regions covered it (bench/evidence.py).  Other
keys (``category``, ...) are kept as metadata.

**V* Bench** (a local copy of ``craigwu/vstar_bench``): category folders
(``direct_attributes/``, ``relative_position/``) holding each image beside a
JSON file of the same stem with ``question`` and ``options``; as in the
benchmark's own evaluation (which counts ``option_chosen == 0`` as correct)
the first option is the right one.  The options are shown in an order
shuffled deterministically per task, so the answer is not always (A).
Without per-image JSON files, ``test_questions.jsonl`` (``image``, ``text``
with the options as "(A) ..." lines, ``label``, ``category``, ``question_id``)
is read instead.

**HR-Bench** (``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv`` or the ``.parquet``
copies): columns ``index``, ``question``, ``answer`` (a letter), ``A``–``D``,
``category``, ``cycle_category`` and ``image`` (base64; a short number instead
refers to the image of the row with that index, as VLMEvalKit's TSVs do).
Images are decoded into the cache directory once.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image

from ..errors import InputError
from .matching import LETTERS, MATCH_KINDS, expected_choice, is_correct

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass
class Task:
    id: str
    question: str
    answer: object
    images: list[Path]
    match: str = "exact"
    options: list[str] | None = None
    tolerance: float = 0.0
    meta: dict = field(default_factory=dict)
    evidence: list[dict] = field(default_factory=list)  # [{"image": name, "box": [x0, y0, x1, y1]}]

    def prompt(self) -> str:
        """What every mode sends: the question, the options, and how to answer."""
        if self.match == "choice":
            lines = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(self.options or []))
            return f"{self.question}\n{lines}\nAnswer with the option's letter from the given choices."
        if self.match == "number":
            return f"{self.question}\nAnswer with a number."
        return f"{self.question}\nAnswer briefly."

    def grade(self, answer: str | None) -> bool:
        return is_correct(answer, self.answer, self.match, options=self.options, tolerance=self.tolerance)

    def expected_text(self) -> str:
        if self.match == "choice":
            i = expected_choice(str(self.answer), self.options or [])
            return f"({LETTERS[i]}) {self.options[i]}"
        if self.match == "number" and self.tolerance:
            return f"{self.answer} ± {self.tolerance:g}"
        return str(self.answer)

    def spec(self) -> dict:
        """What a result record keeps, so grading can be redone without the task file."""
        spec = {"id": self.id, "question": self.question, "answer": self.answer, "match": self.match,
                "images": [p.name for p in self.images]}
        if self.options is not None:
            spec["options"] = list(self.options)
        if self.tolerance:
            spec["tolerance"] = self.tolerance
        if self.meta.get("category"):
            spec["category"] = self.meta["category"]
        if self.evidence:
            spec["evidence_boxes"] = [dict(e) for e in self.evidence]
        return spec


def grade_spec(spec: dict, answer: str | None) -> bool:
    return is_correct(answer, spec["answer"], spec.get("match", "exact"), options=spec.get("options"),
                      tolerance=spec.get("tolerance", 0.0))


# -- JSONL ----------------------------------------------------------------------------------

Resolver = Callable[[str, Path], Path]


class MissingImage(Exception):
    """Raised by a resolver for an image that is legitimately unavailable (the task is skipped)."""


def _relative(name: str, base: Path) -> Path:
    return (base / name) if not Path(name).is_absolute() else Path(name)


def task_from_dict(obj: dict, base: Path, where: str, resolve: Resolver = _relative) -> Task:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: a task must be a JSON object")
    for key in ("id", "question", "answer"):
        if key not in obj or obj[key] in (None, ""):
            raise InputError(f"{where}: the task has no {key!r}")
    names = obj.get("images") if "images" in obj else ([obj["image"]] if obj.get("image") else [])
    if not isinstance(names, list) or not names:
        raise InputError(f"{where}: the task has no 'image' or 'images'")
    match = obj.get("match", "exact")
    if match not in MATCH_KINDS:
        raise InputError(f"{where}: unknown match {match!r} (use {', '.join(MATCH_KINDS)})")
    options = obj.get("options")
    if match == "choice":
        if not isinstance(options, list) or len(options) < 2:
            raise InputError(f"{where}: a 'choice' task needs a list of 'options'")
        try:
            expected_choice(str(obj["answer"]), [str(o) for o in options])
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
    if match == "number":
        try:
            float(str(obj["answer"]).replace(",", ""))
        except ValueError:
            raise InputError(f"{where}: a 'number' task needs a numeric answer, got {obj['answer']!r}") from None
    images = []
    for name in names:
        path = resolve(str(name), base)
        if not path.is_file():
            raise InputError(f"{where}: image not found: {path}")
        images.append(path)
    evidence = evidence_boxes(obj.get("evidence_boxes"), [p.name for p in images], where)
    meta = {k: v for k, v in obj.items()
            if k not in ("id", "question", "answer", "image", "images", "match", "options", "tolerance", "evidence_boxes")}
    return Task(id=str(obj["id"]), question=str(obj["question"]), answer=obj["answer"], images=images, match=match,
                options=[str(o) for o in options] if options is not None else None,
                tolerance=float(obj.get("tolerance", 0) or 0), meta=meta, evidence=evidence)


def evidence_boxes(value, names: list[str], where: str) -> list[dict]:
    """A task's ``evidence_boxes``, checked: each a box of one of its images."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{where}: 'evidence_boxes' must be a list of {{\"image\", \"box\": [x0, y0, x1, y1]}}")
    out = []
    for item in value:
        image, box = (item.get("image"), item.get("box")) if isinstance(item, dict) else (None, item)
        if image is None and len(names) == 1:
            image = names[0]
        if image not in names:
            raise InputError(f"{where}: an evidence box names no image of the task ({image!r}); "
                             f"give \"image\": one of {', '.join(names)}")
        if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box)
                or not (box[2] > box[0] and box[3] > box[1])):
            raise InputError(f"{where}: an evidence box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        out.append({"image": image, "box": [float(v) if isinstance(v, float) else v for v in box]})
    return out


def load_jsonl(path: Path, resolve: Resolver = _relative, skipped: list | None = None) -> list[Task]:
    """Tasks from a JSONL file; images that ``resolve`` reports missing skip their task
    (recorded in ``skipped``), anything else wrong raises InputError with the line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"task file not found: {path}")
    tasks, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        where = f"{path.name}:{number}"
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
        try:
            task = task_from_dict(obj, path.parent, where, resolve)
        except MissingImage as exc:
            if skipped is not None:
                skipped.append((obj.get("id"), str(exc)))
            continue
        if task.id in seen:
            raise InputError(f"{where}: duplicate task id {task.id!r}")
        seen.add(task.id)
        tasks.append(task)
    return tasks


# -- V* Bench -------------------------------------------------------------------------------


def _shuffled(options: list[str], key: str) -> list[str]:
    order = list(options)
    random.Random(f"vstar:{key}").shuffle(order)
    return order


def _image_beside(json_path: Path) -> Path | None:
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = json_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


_OPTION_LINE = re.compile(r"^\s*\(([A-Z])\)\s*(.+?)\s*$")


def load_vstar(root: Path) -> list[Task]:
    root = Path(root)
    tasks = []
    for json_path in sorted(root.glob("*/*.json")):
        try:
            annotation = json.loads(json_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{json_path}: not valid JSON ({exc})") from None
        if not isinstance(annotation, dict) or "question" not in annotation or "options" not in annotation:
            continue
        image = _image_beside(json_path)
        if image is None:
            raise InputError(f"{json_path}: no image with the same name beside it")
        category = json_path.parent.name
        task_id = f"vstar/{category}/{json_path.stem}"
        options = [str(o) for o in annotation["options"]]
        tasks.append(Task(task_id, str(annotation["question"]), options[0], [image], "choice",
                          _shuffled(options, task_id), meta={"category": category, "source": "vstar"}))
    if tasks:
        return tasks
    listing = root / "test_questions.jsonl"
    if listing.is_file():
        for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            text = str(row["text"])
            options, question_lines = [], []
            for text_line in text.splitlines():
                m = _OPTION_LINE.match(text_line)
                if m:
                    options.append(m.group(2))
                elif not options and text_line.strip():
                    question_lines.append(text_line.strip())
            if len(options) < 2:
                raise InputError(f"{listing.name}:{number}: no '(A) ...' option lines in the question text")
            category = str(row.get("category", "vstar"))
            image = root / str(row["image"])
            if not image.is_file():
                raise InputError(f"{listing.name}:{number}: image not found: {image}")
            task_id = f"vstar/{category}/{row.get('question_id', Path(str(row['image'])).stem)}"
            tasks.append(Task(task_id, " ".join(question_lines), str(row["label"]).strip("() "), [image], "choice",
                              options, meta={"category": category, "source": "vstar"}))
    if not tasks:
        raise InputError(f"{root}: no V* Bench annotations found (expected <category>/<name>.json beside each "
                         "image, or test_questions.jsonl)")
    return tasks


def looks_like_vstar(root: Path) -> bool:
    return (root / "test_questions.jsonl").is_file() or any(root.glob("*/*.json"))


# -- HR-Bench -------------------------------------------------------------------------------


def _hrbench_rows(path: Path) -> Iterator[dict]:
    if path.suffix.lower() == ".parquet":
        try:
            import pandas as pd  # heavy, and optional: only for .parquet files

            frame = pd.read_parquet(path)
        except ImportError as exc:
            raise InputError(f"reading {path.name} needs pandas with pyarrow or fastparquet ({exc}); "
                             "or use the .tsv copy") from None
        for row in frame.to_dict(orient="records"):
            yield {k: ("" if v is None else v) for k, v in row.items()}
        return
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle, delimiter="\t")


def _sniff_suffix(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}.get(img.format, ".png")
    except Exception:
        raise InputError("an HR-Bench row's image column is not a readable image") from None


def load_hrbench(path: Path, cache_dir: Path, limit: int | None = None) -> list[Task]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"HR-Bench file not found: {path}")
    out_dir = Path(cache_dir) / f"hrbench-{path.stem}"
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks, image_of = [], {}
    for number, row in enumerate(_hrbench_rows(path), 2):
        if limit is not None and len(tasks) >= limit:
            break
        where = f"{path.name}:{number}"
        missing = [k for k in ("index", "question", "answer", "image", "A", "B") if k not in row]
        if missing:
            raise InputError(f"{where}: missing column(s) {', '.join(missing)} (is this HR-Bench?)")
        index = str(row["index"]).strip()
        blob = str(row["image"]).strip()
        if len(blob) < 64 and blob.isdigit():  # a reference to another row's image
            image = image_of.get(blob)
            if image is None:
                raise InputError(f"{where}: the image refers to row index {blob}, which comes later or is missing")
        else:
            try:
                data = base64.b64decode(blob, validate=False)
            except ValueError:
                raise InputError(f"{where}: the image column is not base64") from None
            image = out_dir / f"{index}{_sniff_suffix(data)}"
            if not image.is_file() or image.stat().st_size != len(data):
                tmp = image.with_suffix(image.suffix + ".part")
                tmp.write_bytes(data)
                tmp.replace(image)
        image_of[index] = image
        options = [str(row[k]).strip() for k in LETTERS[:8] if k in row and str(row[k]).strip() not in ("", "nan")]
        answer = str(row["answer"]).strip()
        meta = {"category": str(row.get("category", "")), "cycle_category": str(row.get("cycle_category", "")),
                "source": "hrbench"}
        tasks.append(Task(f"hrbench/{path.stem}/{index}", str(row["question"]).strip(), answer, [image], "choice",
                          options, meta=meta))
    if not tasks and limit != 0:
        raise InputError(f"{path}: no rows")
    return tasks
