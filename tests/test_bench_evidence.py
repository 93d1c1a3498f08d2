"""Evidence boxes in the bench: where the answer is, and whether each episode's code looked there."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from agentic_vision.bench.evidence import COVER, covered_share, looked_at_evidence
from agentic_vision.bench.generate import generate_tasks
from agentic_vision.bench.offline import OfflineRouter
from agentic_vision.bench.results import read_results
from agentic_vision.bench.tasks import load_jsonl
from agentic_vision.cli.bench import bench_command
from agentic_vision.errors import InputError
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample, require

# coins.png is 384x303; the evidence of "coin" is the top-left coin.
TASKS = [
    {"id": "looks", "image": "coins.png", "question": "What is in the top left corner?", "answer": "a coin",
     "match": "contains", "evidence_boxes": [[10, 10, 60, 60]]},
    {"id": "glances", "image": "coins.png", "question": "What is in the top left?", "answer": "a coin",
     "match": "contains", "evidence_boxes": [{"image": "coins.png", "box": [10, 10, 60, 60]}]},
    {"id": "no-box", "image": "coins.png", "question": "What are these?", "answer": "coins", "match": "contains"},
]
CODE = {  # looks: a crop holding the box; glances: a crop of the bottom right, far from it
    "looks": "from PIL import Image\nImage.open('coins.png').crop((0, 0, 100, 100)).resize((300, 300)).show()",
    "glances": "from PIL import Image\nImage.open('coins.png').crop((250, 200, 384, 303)).show()",
    "no-box": "from PIL import Image\nImage.open('coins.png').crop((0, 0, 50, 50)).show()",
}


def router(request):
    text = request.first_user_text()
    row = next(r for r in TASKS if r["question"] + "\n" in text)
    if OfflineRouter.mode_of(request) == "direct":
        return reply.text(f"It is {row['answer']}.")
    script = [reply.call("run_python", {"code": CODE[row["id"]]}), reply.text(f"It is {row['answer']}.")]
    return script[request.model_turns()]


def test_the_report_says_who_looked_at_the_evidence_and_flags_right_answers_that_did_not(tmp_path, monkeypatch):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    suite = tmp_path / "tasks.jsonl"
    suite.write_text("".join(json.dumps(r) + "\n" for r in TASKS))
    out = tmp_path / "out"
    with ScriptedGemini(router=router) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        monkeypatch.setenv("GEMINI_API_KEY", "test")
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        result = CliRunner().invoke(bench_command, [
            "--suite", str(suite), "--modes", "direct,local", "--model", "gemini-3-flash-preview",
            "--sandbox", "local", "--out", str(out), "--concurrency", "2", "--quiet"])
    assert result.exit_code == 0, result.output + str(result.exception)
    records = {(r["task_id"], r["mode"]): r for r in read_results(out / "results.jsonl").records}
    assert all(r["correct"] for r in records.values())
    assert records[("looks", "local")]["task"]["evidence_boxes"] == [{"image": "coins.png", "box": [10, 10, 60, 60]}]
    assert looked_at_evidence(records[("looks", "local")]) is True
    assert looked_at_evidence(records[("glances", "local")]) is False
    assert looked_at_evidence(records[("no-box", "local")]) is None  # nothing to judge
    assert looked_at_evidence(records[("looks", "direct")]) is None  # no code, no regions

    report = (out / "report.md").read_text()
    section = report.split("## Where the model looked")[1].split("##")[0]
    assert "| local | 2 | 1 | 50.0% | 1 |" in section
    assert "| direct |" not in section
    assert "- **local**, right without looking at the evidence: glances" in section
    per_task = report.split("## Per task")[1]
    assert per_task.count("never looked at the evidence") == 1
    assert "| glances |" in per_task.split("never looked")[0].rsplit("\n", 1)[-1]


def test_the_rule_is_half_of_the_box_inside_one_region_turned_regions_too():
    box = [100, 100, 200, 200]
    assert covered_share(box, {"box": [0, 0, 150, 300], "angle": 0}) == pytest.approx(0.5, abs=0.03)
    assert covered_share(box, {"box": [0, 0, 140, 300], "angle": 0}) < COVER
    assert covered_share(box, {"box": [90, 90, 210, 210], "angle": 0}) == 1.0
    # A 40x400 strip through the box's centre covers 40% upright; turned 45 degrees it covers the band
    # |x - y| <= 20 * sqrt(2) of the box: 1 - (1 - 0.2828)^2 = 48.6%.
    strip = {"box": [130, -50, 170, 350], "angle": 0}
    assert covered_share(box, strip) == pytest.approx(0.4, abs=0.03)
    assert covered_share(box, {**strip, "angle": 45}) == pytest.approx(0.486, abs=0.03)
    # The box itself turned 45 degrees about its centre: an octagon, 2 * (sqrt(2) - 1) = 82.8% of it.
    assert covered_share(box, {"box": box, "angle": 45}) == pytest.approx(0.828, abs=0.03)


def test_task_files_check_their_evidence_boxes(tmp_path):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    for bad, message in [([[10, 10, 5, 60]], "x0 < x1"), ([{"image": "other.png", "box": [0, 0, 1, 1]}], "names no image"),
                         ("here", "must be a list"), ([[0, 0, 1]], "[x0, y0, x1, y1]")]:
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps({**TASKS[0], "evidence_boxes": bad}) + "\n")
        with pytest.raises(InputError, match=message.replace("[", r"\[")):
            load_jsonl(path)


def test_generated_zoom_and_rotate_tasks_know_where_their_target_is(tmp_path):
    tasks, _ = generate_tasks(tmp_path, seed=3)
    judged = [t for t in tasks if t.evidence]
    assert {t.meta["category"] for t in judged} == {"zoom", "rotate"}
    for task in judged:
        [evidence] = task.evidence
        x0, y0, x1, y1 = evidence["box"]
        pixels = np.asarray(Image.open(task.images[0]).convert("L"), dtype=float)
        inside = pixels[y0:y1, x0:x1]
        if task.meta["category"] == "zoom":
            # The label: a light card (245) with a dark outline and dark print, all of it in the box.
            assert (x1 - x0, y1 - y0) < (200, 60)
            assert np.median(inside) > 235 and inside.min() < 80
            assert np.median(pixels[y0 + 3:y1 - 3, x0 - 20:x0 - 3]) != pytest.approx(245, abs=2)
        else:
            # The turned word: all its dark ink inside the box, none outside.
            ink = pixels < 120
            assert ink[y0:y1, x0:x1].sum() == ink.sum() > 500


# -- report.html, looked at in a real browser --------------------------------------------------


def screenshot(page, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    require(chromium, "Chromium (apt-get install chromium; scripts/test.sh installs it)")
    shot = tmp_path / "shot.png"
    # No network: the page must be whole by itself; a fresh profile in tmp_path.
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9", "--window-size=1100,1600",
                    f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def test_report_html_is_a_self_contained_page_a_browser_draws(tmp_path):
    from agentic_vision.bench.report import write_report

    def record(task, mode, answer, regions):
        steps = [{"code": "x", "outcome": "OUTCOME_OK", "output": "", "images": [
            {"mime_type": "image/png", "width": 10, "height": 10, "source": s} for s in regions]}]
        spec = {**{k: v for k, v in task.items() if k != "image"}, "images": ["coins.png"],
                "evidence_boxes": [{"image": "coins.png", "box": [10, 10, 60, 60]}]}
        return {"task_id": task["id"], "mode": mode, "task": spec, "answer": answer, "stop_reason": "answered",
                "steps": steps if mode == "local" else [], "latency_s": 1.0, "model": "m",
                "trace": f"traces/{task['id']}.{mode}.html" if mode == "local" else None}

    near = {"input": "coins.png", "box": [0, 0, 100, 100], "angle": 0, "how": "tracked", "score": 1}
    far = {**near, "box": [250, 200, 384, 303]}
    records = [record(TASKS[0], "direct", "no idea", []), record(TASKS[1], "direct", "a coin", []),
               record(TASKS[0], "local", "a coin", [near]), record(TASKS[1], "local", "a coin <script>", [far])]
    write_report(tmp_path, records, {"suite": "s", "model": "m", "modes": ["direct", "local"]}, {}, "none")
    page = tmp_path / "report.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html  # whole, and escaped
    assert "data:image/png;base64," in html  # the chart is inside
    assert '<td>local</td><td class="n">2</td><td class="n">1</td><td>' in html
    assert html.count("⚠ never looked") == 1 and '<a href="traces/looks.local.html">trace</a>' in html

    pixels = screenshot(page, tmp_path)
    assert pixels.shape[1] == 1100 and pixels.std() > 10  # a drawn page, not a blank one
    colour = lambda rgb: (np.abs(pixels - np.array(rgb)).sum(axis=2) < 40).sum()  # noqa: E731
    assert colour((0x34, 0xA8, 0x53)) > 500  # the chart's green bar for "local": the embedded PNG was drawn
    assert colour((0xFF, 0x8A, 0x00)) > 100  # the share bar of "Where the model looked"
