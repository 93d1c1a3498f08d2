"""Loading suites: the JSONL task format, V* Bench and HR-Bench copies, the builtin suite."""

from __future__ import annotations

import base64
import csv
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from agentic_vision.bench.builtin import DATA_FILE, load_builtin
from agentic_vision.bench.suite import load_suite
from agentic_vision.bench.tasks import load_hrbench, load_jsonl, load_vstar
from agentic_vision.errors import InputError
from conftest import sample


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_tasks_resolve_images_next_to_the_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    shutil.copy(sample("coins.png"), tmp_path / "imgs" / "coins.png")
    shutil.copy(sample("astronaut.png"), tmp_path / "astronaut.png")
    path = write_jsonl(tmp_path / "tasks.jsonl", [
        {"id": "a", "image": "imgs/coins.png", "question": "How many coins?", "answer": 24, "match": "number"},
        {"id": "b", "images": ["astronaut.png", "imgs/coins.png"], "question": "Suit colour?", "answer": "B",
         "match": "choice", "options": ["blue", "orange"], "category": "colour"},
        {"id": "c", "image": "astronaut.png", "question": "What is it?", "answer": "an astronaut"},
    ])
    tasks = load_jsonl(path)
    assert [t.id for t in tasks] == ["a", "b", "c"]
    assert tasks[0].images == [tmp_path / "imgs" / "coins.png"] and tasks[0].match == "number"
    assert tasks[1].images[0] == tmp_path / "astronaut.png" and tasks[1].meta == {"category": "colour"}
    assert tasks[2].match == "exact"
    assert tasks[1].prompt() == ("Suit colour?\n(A) blue\n(B) orange\n"
                                 "Answer with the option's letter from the given choices.")
    assert tasks[1].grade("orange") and tasks[1].grade("(B)") and not tasks[1].grade("blue")
    assert tasks[1].spec()["options"] == ["blue", "orange"] and tasks[1].spec()["images"] == ["astronaut.png", "coins.png"]
    # The suite loader takes a .jsonl path, or a directory holding tasks.jsonl; --limit keeps the first N.
    assert [t.id for t in load_suite(str(path), tmp_path / "cache", limit=2).tasks] == ["a", "b"]
    assert len(load_suite(str(tmp_path), tmp_path / "cache").tasks) == 3


@pytest.mark.parametrize("row, message", [
    ({"id": "x", "image": "missing.png", "question": "q", "answer": 1}, "image not found"),
    ({"id": "x", "image": "coins.png", "question": "q"}, "no 'answer'"),
    ({"id": "x", "question": "q", "answer": 1}, "no 'image'"),
    ({"id": "x", "image": "coins.png", "question": "q", "answer": "red", "match": "choice",
      "options": ["blue", "green"]}, "neither an option letter"),
    ({"id": "x", "image": "coins.png", "question": "q", "answer": "many", "match": "number"}, "numeric answer"),
    ({"id": "x", "image": "coins.png", "question": "q", "answer": 1, "match": "fuzzy"}, "unknown match"),
])
def test_jsonl_errors_name_the_line(tmp_path, row, message):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    ok = {"id": "ok", "image": "coins.png", "question": "q", "answer": 1}
    path = write_jsonl(tmp_path / "t.jsonl", [ok, row])
    with pytest.raises(InputError, match=rf"t\.jsonl:2: .*{message}"):
        load_jsonl(path)


def test_jsonl_duplicate_ids_and_bad_json(tmp_path):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    row = {"id": "x", "image": "coins.png", "question": "q", "answer": 1}
    with pytest.raises(InputError, match="duplicate task id 'x'"):
        load_jsonl(write_jsonl(tmp_path / "d.jsonl", [row, row]))
    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n{not json\n")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not valid JSON"):
        load_jsonl(tmp_path / "bad.jsonl")


def make_vstar(root):
    """A tiny copy in V* Bench's layout: category folders, image + same-stem JSON, right option first."""
    for category, stem, picture, question, options in [
        ("direct_attributes", "sa_1", "astronaut.png", "What is the color of the suit?",
         ["orange", "blue", "white", "green"]),
        ("direct_attributes", "sa_2", "coffee.png", "What is the material of the table?",
         ["wood", "glass", "metal", "stone"]),
        ("relative_position", "sa_3", "rocket.jpg", "Is the rocket on the left or right side of the tower?",
         ["right", "left"]),
    ]:
        (root / category).mkdir(parents=True, exist_ok=True)
        shutil.copy(sample(picture), root / category / f"{stem}{sample(picture).suffix}")
        (root / category / f"{stem}.json").write_text(json.dumps(
            {"target_object": ["thing"], "bbox": [[1, 2, 3, 4]], "question": question, "options": options}))
    return root


def test_vstar_per_image_annotations(tmp_path):
    root = make_vstar(tmp_path / "vstar_bench")
    tasks = load_suite(str(root), tmp_path / "cache").tasks
    assert [t.id for t in tasks] == ["vstar/direct_attributes/sa_1", "vstar/direct_attributes/sa_2",
                                     "vstar/relative_position/sa_3"]
    suit = tasks[0]
    assert suit.match == "choice" and sorted(suit.options) == sorted(["orange", "blue", "white", "green"])
    assert suit.answer == "orange" and suit.images[0].name == "sa_1.png"
    assert suit.meta["category"] == "direct_attributes"
    letter = "ABCD"[suit.options.index("orange")]
    assert suit.grade(f"({letter})") and suit.grade("orange") and not suit.grade("blue")
    # The shuffle is fixed per task: the same order every time.
    assert load_vstar(root)[0].options == suit.options
    # ... and not "always (A)" over the suite's 4-option tasks (sa_1 and sa_2 here, by their fixed order).
    assert tasks[2].answer == "right"


def test_vstar_test_questions_jsonl(tmp_path):
    root = tmp_path / "vstar"
    (root / "direct_attributes").mkdir(parents=True)
    shutil.copy(sample("astronaut.png"), root / "direct_attributes" / "sa_1.png")
    text = ("What is the color of the suit?\n(A) blue\n(B) orange\n(C) white\n(D) green\n"
            "Answer with the option's letter from the given choices directly.")
    write_jsonl(root / "test_questions.jsonl", [{"image": "direct_attributes/sa_1.png", "text": text,
                                                 "category": "direct_attributes", "question_id": 0, "label": "B"}])
    (task,) = load_vstar(root)
    assert task.id == "vstar/direct_attributes/0"
    assert task.question == "What is the color of the suit?"
    assert task.options == ["blue", "orange", "white", "green"] and task.answer == "B"
    assert task.grade("(B) orange") and not task.grade("(A)")


def test_hrbench_tsv_with_base64_images_and_references(tmp_path):
    photo = base64.b64encode(sample("rocket.jpg").read_bytes()).decode()
    path = tmp_path / "hr_bench_4k.tsv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image"])
        writer.writerow([0, "What colour is the rocket?", "C", "single", "red", "black", "white", "green",
                         "single_0", photo])
        writer.writerow([1, "What colour is the rocket?", "A", "single", "white", "red", "black", "green",
                         "single_1", "0"])  # a cycled copy that refers to row 0's image
    tasks = load_suite(str(path), tmp_path / "cache").tasks
    assert [t.id for t in tasks] == ["hrbench/hr_bench_4k/0", "hrbench/hr_bench_4k/1"]
    first, second = tasks
    assert first.options == ["red", "black", "white", "green"] and first.answer == "C"
    assert first.images[0].read_bytes() == sample("rocket.jpg").read_bytes()
    assert first.images[0].suffix == ".jpg" and second.images == first.images
    assert first.grade("(C) white") and second.grade("A") and not second.grade("(C)")
    assert first.meta["cycle_category"] == "single_0"
    assert len(load_hrbench(path, tmp_path / "cache", limit=1)) == 1


def test_hrbench_parquet_file(tmp_path):
    """The same rows as the .tsv above, written as parquet (pandas + pyarrow, both in the test extra)."""
    import pandas as pd

    photo = base64.b64encode(sample("rocket.jpg").read_bytes()).decode()
    rows = [dict(index=0, question="What colour is the rocket?", answer="C", category="single", A="red", B="black",
                 C="white", D="green", cycle_category="single_0", image=photo),
            dict(index=1, question="What colour is the rocket?", answer="A", category="single", A="white", B="red",
                 C="black", D="green", cycle_category="single_1", image="0")]
    path = tmp_path / "hr_bench_8k.parquet"
    pd.DataFrame(rows).to_parquet(path)
    assert path.read_bytes()[:4] == b"PAR1"
    first, second = load_suite(str(path), tmp_path / "cache").tasks
    assert (first.id, second.id) == ("hrbench/hr_bench_8k/0", "hrbench/hr_bench_8k/1")
    assert first.images[0].read_bytes() == sample("rocket.jpg").read_bytes() and second.images == first.images
    assert first.options == ["red", "black", "white", "green"] and first.grade("(C) white")
    assert second.answer == "A" and second.grade("A") and not second.grade("(C)")


def test_hrbench_parquet_without_a_parquet_engine_says_so(tmp_path, monkeypatch):
    import pandas as pd

    path = tmp_path / "hr_bench_4k.parquet"
    pd.DataFrame([{"index": 0}]).to_parquet(path)
    for engine in ("pyarrow", "fastparquet"):  # as if neither were installed: their imports fail
        monkeypatch.setitem(sys.modules, engine, None)
    with pytest.raises(InputError, match="pyarrow or fastparquet"):
        load_suite(str(path), tmp_path / "cache")


def test_unknown_suite(tmp_path):
    with pytest.raises(InputError, match="no suite named 'nope'"):
        load_suite("nope", tmp_path)


# -- the builtin suite -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    cache = tmp_path_factory.mktemp("bench-cache")
    return load_builtin(cache, seed=0), cache


def test_builtin_suite_size_and_shape(builtin):
    (tasks, notes), _ = builtin
    checked = [t for t in tasks if not t.meta.get("generated")]
    generated = [t for t in tasks if t.meta.get("generated")]
    assert notes == []
    assert 30 <= len(tasks) <= 60
    assert len(checked) == sum(1 for line in DATA_FILE.read_text().splitlines() if line.startswith("{"))
    assert {t.meta["category"] for t in generated} == {"zoom", "count", "rotate", "table", "chart"}
    assert len({t.id for t in tasks}) == len(tasks)
    for task in tasks:  # every expected answer passes its own grader
        assert task.grade(task.expected_text() if task.match == "choice" else str(task.answer)), task.id
        assert all(p.is_file() for p in task.images)


def test_builtin_is_stable_for_a_seed(builtin, tmp_path, monkeypatch):
    import agentic_vision.bench.generate as generate

    (tasks, _), cache = builtin
    monkeypatch.setattr(generate, "COUNTS", {kind: 1 for kind in generate.COUNTS})  # one of each kind: faster
    again, _ = load_builtin(tmp_path / "fresh", seed=0, part="generated")  # generated from scratch elsewhere
    before = {t.id: t for t in tasks}
    assert [t.id for t in again] == ["gen-s0-zoom-1", "gen-s0-count-1", "gen-s0-rotate-1", "gen-s0-table-1",
                                     "gen-s0-chart-1"]
    for task in again:
        old = before[task.id]
        assert (task.question, task.answer, task.images[0].name) == (old.question, old.answer, old.images[0].name)
        assert task.images[0].read_bytes() == old.images[0].read_bytes()
    other, _ = load_builtin(tmp_path / "seed1", seed=1, part="generated")
    assert all(t.id.startswith("gen-s1-") for t in other)
    assert [t.answer for t in other] != [t.answer for t in again]


def test_generated_answers_match_the_pixels(builtin):
    (tasks, _), _ = builtin
    from skimage.measure import label

    for task in tasks:
        if task.meta.get("category") == "count":
            pixels = np.asarray(Image.open(task.images[0]).convert("RGB")).astype(int)
            red = (pixels[..., 0] > 180) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
            assert label(red).max() == task.answer, task.id
        if task.meta.get("category") == "zoom":
            with Image.open(task.images[0]) as img:
                assert img.size == (4000, 3000)


def test_builtin_without_scikit_image_keeps_what_it_can(tmp_path, monkeypatch):
    import agentic_vision.bench.generate as generate
    import agentic_vision.bench.samples as samples

    monkeypatch.setattr(generate, "COUNTS", {"zoom": 1, "rotate": 1})

    real = samples.sample_dir
    monkeypatch.setattr(samples, "sample_dir", lambda source: None if source == "skimage" else real(source))
    tasks, notes = load_builtin(tmp_path, seed=0)
    assert len(notes) == 2 and notes[1].startswith("scikit-image not installed:")
    missing = 33 + 2 - len(tasks)  # the data file's 33, the two generated kept in COUNTS above
    assert notes[0] == (f"only {len(tasks)} of the 35 builtin tasks can run here: pip install "
                        f"'agentic-vision[bench]' (scikit-image, matplotlib) brings the other {missing}")
    assert tasks and all(not p.is_relative_to(real("skimage")) for t in tasks for p in t.images)
    assert any(t.id == "hopper-nametag" for t in tasks)  # matplotlib's images still count
    assert any(t.meta.get("category") == "zoom" for t in tasks)  # built from matplotlib's photo
