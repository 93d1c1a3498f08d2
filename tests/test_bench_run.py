"""The benchmark end to end: the real SDK against the scripted Gemini server, the real local
sandbox, every mode; the numbers checked against values worked out by hand for the script."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from google.genai import types

from agentic_vision.cli.bench import PAIRED_LEGEND, bench_command
from agentic_vision.bench.modes import ModeRunner, available_modes
from agentic_vision.bench.offline import OfflineRouter
from agentic_vision.bench.results import ResultsFile, read_results
from agentic_vision.models.gemini import read_hosted
from agentic_vision.bench.tasks import Task
from agentic_vision.models.base import Model, ModelTurn, Usage
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

MODEL = "gemini-3-flash-preview"

# Four tasks; which mode gets each right (by hand: direct 1/4, hosted 3/4, local 4/4, blind 1/4).
TASKS = [
    {"id": "coins", "image": "coins.png", "question": "How many coins are in this picture?", "answer": 24,
     "match": "number"},
    {"id": "suit", "image": "astronaut.png", "question": "What colour is the astronaut's suit?", "answer": "orange",
     "match": "choice", "options": ["blue", "white", "orange", "green"]},
    {"id": "heading", "image": "page.png", "question": "What is the heading of this page?",
     "answer": "Region-based segmentation", "match": "contains"},
    {"id": "word", "image": "logo2.png", "question": "Which word is written in this logo?", "answer": "matplotlib"},
]
ANSWERS = {  # task -> (right answer, wrong answer)
    "coins": ("There are 24 coins.", "There are 23 coins."),
    "suit": ("The answer is (C) orange.", "(A) blue"),
    "heading": ("The heading reads: Region-based segmentation", "Segmentation basics"),
    "word": ("matplotlib", "matlab"),
}
RIGHT = {
    "direct": {"coins"},
    "hosted": {"coins", "suit", "heading"},
    "local": {"coins", "suit", "heading", "word"},
    "local-blind": {"suit"},
}
# Usage per reply, so token sums and costs are easy to do by hand (local-blind keeps the server's own counts).
USAGE = {
    "direct": {"promptTokenCount": 100, "candidatesTokenCount": 10, "thoughtsTokenCount": 5},
    "hosted": {"promptTokenCount": 200, "candidatesTokenCount": 40, "thoughtsTokenCount": 20,
               "toolUsePromptTokenCount": 300},
    "local": {"promptTokenCount": 150, "candidatesTokenCount": 12, "thoughtsTokenCount": 6},
    "local-blind": None,
}
PRICES = {"gemini-3-flash": {"input": 1.0, "output": 10.0}}


def make_suite(tmp_path) -> tuple:
    for row in TASKS:
        shutil.copy(sample(row["image"]), tmp_path / row["image"])
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TASKS))
    return path


def crop(name: str) -> str:
    return (f"from PIL import Image\nimg = Image.open({name!r})\nw, h = img.size\nprint(img.size)\n"
            "img.crop((0, 0, w // 2, h // 2)).show()")


def router(request):
    text = request.first_user_text()
    row = next(r for r in TASKS if r["question"] in text)
    mode = OfflineRouter.mode_of(request)
    answer = ANSWERS[row["id"]][0 if row["id"] in RIGHT[mode] else 1]
    usage = USAGE[mode]
    if mode == "direct":
        return reply.text(answer, thought="One look.", usage=usage)
    if mode == "hosted":
        png = sample("horse.png").read_bytes()
        return reply.hosted(crop(row["image"]), "(1, 1)\n", images=[png], text=answer, thought="Crop.", usage=usage)
    script = [reply.call("run_python", {"code": crop(row["image"])}, thought="Crop first.", usage=usage),
              reply.text(answer, thought="Done.", usage=usage)]
    return script[request.model_turns()]


@pytest.fixture
def gemini_env(monkeypatch):
    def point(server):
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        monkeypatch.setenv("GEMINI_API_KEY", "test")
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    return point


def test_all_modes_end_to_end_with_numbers_by_hand(tmp_path, gemini_env):
    suite = make_suite(tmp_path)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    out = tmp_path / "out"
    with ScriptedGemini(router=router) as server:
        gemini_env(server)
        result = CliRunner().invoke(bench_command, [
            "--suite", str(suite), "--modes", "direct,hosted,local,local-blind", "--model", MODEL,
            "--sandbox", "local", "--out", str(out), "--concurrency", "3", "--prices", str(prices), "--quiet"])
    assert result.exit_code == 0, result.output + str(result.exception)
    assert all(r.status == 200 for r in server.requests), [r.error for r in server.requests if r.error]

    records = read_results(out / "results.jsonl").records
    assert len(records) == 16 and len({(r["task_id"], r["mode"]) for r in records}) == 16
    by = {(r["task_id"], r["mode"]): r for r in records}
    for (task, mode), r in by.items():
        assert r["correct"] is (task in RIGHT[mode]), (task, mode, r["answer"])
        assert r["stop_reason"] == "answered" and r["model"] == MODEL

    # What each mode did.
    hosted = by[("coins", "hosted")]
    assert hosted["model_calls"] == 1 and hosted["code_runs"] == 1
    assert hosted["steps"][0]["outcome"] == "OUTCOME_OK" and hosted["steps"][0]["output"] == "(1, 1)\n"
    assert hosted["steps"][0]["images"][0]["mime_type"] == "image/png"
    assert hosted["answer"] == ANSWERS["coins"][0] and hosted["thoughts"] == "Crop."
    local = by[("coins", "local")]
    assert local["model_calls"] == 2 and local["code_runs"] == 1 and local["failed_code_runs"] == 0
    assert local["steps"][0]["output"] == "(384, 303)\n"  # the real sandbox ran the code on the original
    assert local["steps"][0]["images"][0]["width"] == 192
    assert (out / local["trace"]).is_file() and local["trace"] == "traces/coins.local.html"
    assert by[("coins", "direct")]["code_runs"] == 0 and by[("coins", "direct")]["trace"] is None
    # The blind loop saw text only: its function response carries no image, and says so.
    blind_requests = [r for r in server.requests if "not shown in this mode" in json.dumps(r.function_responses())]
    assert len(blind_requests) == 4 and all(not r.images()[1:] for r in blind_requests)
    # Hosted requests asked for code execution with thoughts; direct ones had no tools.
    hosted_bodies = [r.body for r in server.requests if any("codeExecution" in t for t in r.body.get("tools") or [])]
    assert len(hosted_bodies) == 4
    assert all(b["generationConfig"]["thinkingConfig"]["includeThoughts"] for b in hosted_bodies)

    # Tokens: by hand from the usage of each reply; and all of them together equal what the server reported.
    def total(mode, key):
        return sum(by[(t["id"], mode)]["usage"][key] for t in TASKS)
    assert [total("direct", k) for k in ("prompt_tokens", "output_tokens", "thoughts_tokens")] == [400, 40, 20]
    assert [total("hosted", k) for k in ("prompt_tokens", "output_tokens", "thoughts_tokens",
                                         "tool_use_prompt_tokens")] == [800, 160, 80, 1200]
    assert [total("local", k) for k in ("prompt_tokens", "output_tokens", "thoughts_tokens")] == [1200, 96, 48]
    served = [r.response["usageMetadata"] for r in server.requests]
    for key, wire in [("prompt_tokens", "promptTokenCount"), ("output_tokens", "candidatesTokenCount"),
                      ("thoughts_tokens", "thoughtsTokenCount"), ("tool_use_prompt_tokens", "toolUsePromptTokenCount")]:
        assert sum(r["usage"][key] for r in records) == sum(u.get(wire, 0) for u in served), key

    # The printed summary and the report: accuracy, Wilson intervals, McNemar (b, c, p), cost, by hand.
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.split()}
    assert lines["direct"].split()[1:4] == ["4", "25.0%", "4.6–69.9%"]
    assert PAIRED_LEGEND in result.output.splitlines()  # the b/c column explained where it is printed
    assert lines["hosted"].split()[1:6] == ["4", "75.0%", "30.1–95.4%", "0/2", "0.500"]
    assert lines["local"].split()[1:6] == ["4", "100.0%", "51.0–100.0%", "0/3", "0.250"]
    assert lines["local-blind"].split()[1:6] == ["4", "25.0%", "4.6–69.9%", "1/1", "1.000"]
    # Cost at $1 / $10 per million: direct (400 + 0) * 1 + (40 + 20) * 10 = 1000 -> $0.0010;
    # hosted (800 + 1200) + (160 + 80) * 10 = 4400 -> $0.0044; local 1200 + (96 + 48) * 10 = 2640 -> $0.0026.
    assert [lines[m].split()[-1] for m in ("direct", "hosted", "local")] == ["$0.0010", "$0.0044", "$0.0026"]
    report = (out / "report.md").read_text()
    assert "| direct | 4 | 1 | 25.0% | 4.6% – 69.9% | – | – |" in report
    assert "| hosted | 4 | 3 | 75.0% | 30.1% – 95.4% | 0 / 2 | 0.500 |" in report
    assert "| local | 4 | 4 | 100.0% | 51.0% – 100.0% | 0 / 3 | 0.250 |" in report
    assert "| local-blind | 4 | 1 | 25.0% | 4.6% – 69.9% | 1 / 1 | 1.000 |" in report
    assert "| 400 | 40 | 20 | 0 | $0.0010 |" in report and "| 800 | 160 | 80 | 1,200 | $0.0044 |" in report
    assert "| ✓ 24 | ✓ 24 | ✓ 24 [trace](traces/coins.local.html) | ✗ 23 [trace](traces/coins.local-blind.html) |" in report
    assert "None: every run ended with an answer." in report
    rows = report.split("## Per task")[1]
    assert [rows.index(f"\n| {t['id']} |") for t in TASKS] == sorted(rows.index(f"\n| {t['id']} |") for t in TASKS)
    png = (out / "accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG")

    # --report-only rebuilds the same report from results.jsonl alone.
    before = report
    (out / "report.md").unlink()
    again = CliRunner().invoke(bench_command, ["--out", str(out), "--report-only", "--prices", str(prices)])
    assert again.exit_code == 0, again.output
    assert (out / "report.md").read_text().split("## Accuracy")[1] == before.split("## Accuracy")[1]


def test_failures_are_results_with_their_reason(tmp_path, gemini_env):
    suite = make_suite(tmp_path)

    def failing(request):
        text = request.first_user_text()
        if "coins" in text:
            return reply.error(400, message="Scripted refusal for the coins.")
        if "suit" in text:
            return reply.parts({"text": "thinking only", "thought": True}, finish_reason="MAX_TOKENS")
        return reply.text("matplotlib")

    out = tmp_path / "out"
    with ScriptedGemini(router=failing) as server:
        gemini_env(server)
        result = CliRunner().invoke(bench_command, ["--suite", str(suite), "--modes", "direct", "--model", MODEL,
                                                    "--out", str(out), "--quiet", "--no-traces"])
    assert result.exit_code == 0, result.output
    by = {r["task_id"]: r for r in read_results(out / "results.jsonl").records}
    assert by["coins"]["stop_reason"] == "model_error" and "Scripted refusal" in by["coins"]["error"]
    assert by["suit"]["stop_reason"] == "no_answer" and "MAX_TOKENS" in by["suit"]["error"]
    assert by["word"]["correct"] and not by["coins"]["correct"]
    report = (out / "report.md").read_text()
    assert "- **direct**: model_error × 1, no_answer × 1" in report
    assert "Scripted refusal for the coins." in report


def test_existing_results_need_resume(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text('{"task_id": "a", "mode": "direct"}\n')
    (out / "run.json").write_text('{"model": "earlier"}')
    result = CliRunner().invoke(bench_command, ["--suite", str(make_suite(tmp_path)), "--out", str(out),
                                                "--modes", "direct", "--quiet"], env={"GEMINI_API_KEY": "k"})
    assert result.exit_code == 2 and "pass --resume" in result.output
    assert (out / "run.json").read_text() == '{"model": "earlier"}'  # untouched
    # Resuming with another model is refused too: one results file, one model.
    with ScriptedGemini([]) as server:  # the API must answer before a run starts
        result = CliRunner().invoke(bench_command, ["--suite", str(make_suite(tmp_path)), "--out", str(out),
                                                    "--modes", "direct", "--quiet", "--resume"],
                                    env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
    assert result.exit_code == 2 and "holds results of model 'earlier'" in result.output
    assert bench_command.name == "bench"


def test_no_key_fails_once_before_anything_runs(tmp_path, monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(bench_command, ["--suite", str(make_suite(tmp_path)), "--out", str(tmp_path / "o"),
                                                "--modes", "direct"])
    assert result.exit_code == 2 and "no API key" in result.output
    assert not (tmp_path / "o" / "results.jsonl").exists()


# -- pieces ----------------------------------------------------------------------------------


def test_results_file_discards_a_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsFile(path, resume=False) as store:
        store.append({"task_id": "a", "mode": "direct", "x": 1})
        store.append({"task_id": "b", "mode": "direct", "x": 2})
    with path.open("ab") as f:
        f.write(b'{"task_id": "c", "mode": "dir')  # a kill in the middle of a write
    loaded = read_results(path)
    assert [r["task_id"] for r in loaded.records] == ["a", "b"] and loaded.torn_bytes > 0
    with ResultsFile(path, resume=True) as store:
        assert store.done() == {("a", "direct"), ("b", "direct")}
        store.append({"task_id": "c", "mode": "direct", "x": 3})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["a", "b", "c"]  # the torn tail is gone


def test_read_hosted_parts_into_steps():
    png = sample("horse.png").read_bytes()
    response = types.GenerateContentResponse(candidates=[types.Candidate(content=types.Content(role="model", parts=[
        types.Part(text="Plan: zoom.", thought=True),
        types.Part(text="Let me look closer."),
        types.Part(executable_code=types.ExecutableCode(language="PYTHON", code="print(1/0)")),
        types.Part(code_execution_result=types.CodeExecutionResult(outcome="OUTCOME_FAILED", output="ZeroDivisionError")),
        types.Part(executable_code=types.ExecutableCode(language="PYTHON", code="crop()")),
        types.Part(code_execution_result=types.CodeExecutionResult(outcome="OUTCOME_OK", output="ok\n")),
        types.Part(inline_data=types.Blob(data=png, mime_type="image/png")),
        types.Part(text="There are "), types.Part(text="24 coins."),
    ]))])
    episode = read_hosted(response)  # as the hosted mode reads it
    assert episode.answer == "There are 24 coins."  # the text after the last code part
    assert episode.thoughts == "Plan: zoom."
    assert [(s["code"], s["outcome"]) for s in episode.steps] == [("print(1/0)", "OUTCOME_FAILED"),
                                                                  ("crop()", "OUTCOME_OK")]
    assert episode.steps[1]["images"] == [{"mime_type": "image/png", "width": 400, "height": 328}]


class FakeConversation:
    def __init__(self, log):
        self.log = log

    def add_user(self, text, images):
        self.log.append(("user", text, len(images)))

    def generate(self, *, allow_tools=True):
        self.log.append(("generate", allow_tools))
        return ModelTurn(text="(C) orange", usage=Usage(7, 3, 0, 0))


class FakeModel(Model):
    """Any backend: only the Model / Conversation interface of models/base.py."""

    name = "openai:fake-vlm"

    def __init__(self):
        self.log = []

    def start(self, system, tool):
        return FakeConversation(self.log)


def test_direct_works_for_any_backend_and_hosted_is_skipped(tmp_path):
    model = FakeModel()
    modes, notes = available_modes(model, ["direct", "hosted", "local"])
    assert modes == ["direct", "local"] and "hosted: skipped" in notes[0] and "openai:fake-vlm" in notes[0]
    task = Task("suit", "What colour is the suit?", "orange", [sample("astronaut.png")], "choice",
                ["blue", "white", "orange", "green"])
    episode = ModeRunner(model, sandbox="local").run("direct", task)
    assert episode.answer == "(C) orange" and episode.stop_reason == "answered" and episode.model_calls == 1
    assert episode.usage == Usage(7, 3, 0, 0)
    assert model.log == [("user", task.prompt(), 1), ("generate", False)]
    assert task.grade(episode.answer)
