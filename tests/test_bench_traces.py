"""Bench traces say what was expected and whether the answer was right, blind ones say the model
never saw its images, and no episode's latency holds a sandbox's cold start."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from agentic_vision.bench.offline import OfflineRouter
from agentic_vision.bench.results import read_results
from agentic_vision.cli.bench import bench_command
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from agentic_vision.trace import BLIND_NOTE
from conftest import sample

TASKS = [
    {"id": "coins", "image": "coins.png", "question": "How many coins are in this picture?", "answer": 24,
     "match": "number"},
    {"id": "suit", "image": "astronaut.png", "question": "What colour is the astronaut's suit?", "answer": "white",
     "match": "choice", "options": ["blue", "white", "orange"]},
]
CROP = "from PIL import Image\nimg = Image.open({name!r})\nimg.crop((0, 0, 256, 256)).show()\nprint(img.size)"


def router(request):
    row = next(r for r in TASKS if r["question"] in request.first_user_text())
    answer = "There are 24 coins." if row["id"] == "coins" else "(A) blue"  # the suit answer is wrong
    script = [reply.call("run_python", {"code": CROP.format(name=row["image"])}), reply.text(answer)]
    return script[request.model_turns()]


def test_traces_grading_blind_note_size_and_no_cold_start(tmp_path, monkeypatch):
    for row in TASKS:
        shutil.copy(sample(row["image"]), tmp_path / row["image"])
    suite = tmp_path / "tasks.jsonl"
    suite.write_text("".join(json.dumps(r) + "\n" for r in TASKS))
    out = tmp_path / "out"
    with ScriptedGemini(router=router) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        monkeypatch.setenv("GEMINI_API_KEY", "test")
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        result = CliRunner().invoke(bench_command, [
            "--suite", str(suite), "--modes", "local,local-blind", "--model", "gemini-3-flash-preview",
            "--sandbox", "local", "--out", str(out), "--concurrency", "1", "--quiet"])
    assert result.exit_code == 0, result.output + str(result.exception)
    assert all(OfflineRouter.mode_of(r) in ("local", "local-blind") for r in server.requests)

    def header(name):
        html = (out / "traces" / name).read_text()
        return html[: html.index("<h2>Question</h2>")], len(html)

    top, _ = header("coins.local.html")
    assert "RIGHT</span> expected <b>24</b>" in top and "mode local" in top and BLIND_NOTE not in top
    top, size = header("suit.local.html")
    assert "WRONG</span> expected <b>(B) white</b>" in top
    assert size < 150_000  # a 512x512 photo and a 256x256 crop of it (it was 277 KB)
    top, _ = header("suit.local-blind.html")
    assert BLIND_NOTE.split(".")[0] in top and "WRONG" in top

    meta = json.loads((out / "run.json").read_text())
    assert meta["sandbox_warmup_s"] > 0  # the sandboxes were started before the clock ran, and it says so
    records = read_results(out / "results.jsonl").records
    assert len(records) == 4
    # The first episodes took sandboxes that were waiting (later ones may not, when episodes are faster
    # than a sandbox starts, as with this instant model: each record says so, with the seconds it took).
    assert [r["timings"]["cold_start"] for r in records[:2]] == [False, False], [r["timings"] for r in records]
    assert all(isinstance(r["timings"]["sandbox_start_s"], float) for r in records)
