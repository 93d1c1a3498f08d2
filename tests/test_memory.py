"""Corrections that persist: feedback and remember reach later related runs, and only those."""

from __future__ import annotations

import json
import os

import pytest

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample
from run_log_support import cli, make_home, rows, system_text, user_texts

CORRECTION = "Count the coin cut by the right edge of the image too."


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """A home with one answered run and a feedback correction on it."""
    home = make_home(tmp_path_factory.mktemp("memory") / "home")
    with ScriptedGemini([reply.text("23 coins.")]) as server:
        first = cli(home, "ask", str(sample("coins.png")), "How many coins are in this picture?", "--sandbox", "local",
                    "--json", server=server)
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    given = cli(home, "feedback", run_id[:6], CORRECTION, "--wrong")
    assert given.returncode == 0, given.stderr
    return home, run_id


def ask_recorded(home, question, *extra, image="coins.png"):
    with ScriptedGemini([reply.text("ok")]) as server:
        result = cli(home, "ask", str(sample(image)), question, "--sandbox", "local", "--json", *extra, server=server)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), server.requests[0]


def test_feedback_is_kept_with_the_run_and_as_a_memory_item(corrected):
    home, run_id = corrected
    assert rows(home, "SELECT verdict FROM runs WHERE id = ?", (run_id,)) == [("wrong",)]
    [item] = json.loads(cli(home, "memory", "list", "--json").stdout)
    assert item["text"] == CORRECTION and item["run_id"] == run_id and item["verdict"] == "wrong"
    assert "How many coins are in this picture?" in item["context"]
    assert "[wrong]" in cli(home, "logs").stdout


def test_a_related_run_gets_the_correction_in_its_system_instruction(corrected):
    home, _ = corrected
    data, request = ask_recorded(home, "Count the coins, please: how many?")
    system = system_text(request)
    assert "Notes from the user's corrections of earlier runs" in system and CORRECTION in system
    [used] = data["memory_used"]
    assert used["text"] == CORRECTION
    # The log says which items the run used.
    shown = cli(home, "logs", "show", data["run_id"][:8])
    assert f"memory {used['id'][:8]}: {CORRECTION}" in shown.stdout


def test_an_unrelated_run_does_not_get_it(corrected):
    home, _ = corrected
    data, request = ask_recorded(home, "What colour is the rocket's body?", image="rocket.jpg")
    assert CORRECTION not in system_text(request) and data["memory_used"] == []


def test_no_memory_turns_it_off(corrected):
    home, _ = corrected
    data, request = ask_recorded(home, "How many coins are there?", "--no-memory")
    assert CORRECTION not in system_text(request) and data["memory_used"] == []
    data, request = ask_recorded(home, "How many coins are there?", "--memory-items", "0")
    assert CORRECTION not in system_text(request)


def test_bench_does_not_learn_from_memory_unless_asked(corrected, tmp_path):
    home, _ = corrected
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "coins", "question": "How many coins are there?",
                                 "image": str(sample("coins.png")), "answer": "24"}) + "\n")
    for extra, expected in [((), False), (("--memory",), True)]:
        with ScriptedGemini([reply.text("24")]) as server:
            out = tmp_path / f"out{len(extra)}"
            result = cli(home, "bench", "--suite", str(tasks), "--modes", "local", "--sandbox", "local",
                         "--out", str(out), "--quiet", *extra, server=server)
            assert result.returncode == 0, result.stderr
        assert (CORRECTION in system_text(server.requests[0])) is expected


def test_remember_with_a_folder_or_tag_scope(tmp_path):
    home = make_home(tmp_path / "home")
    folder = tmp_path / "plans"
    folder.mkdir()
    (folder / "floor.png").write_bytes(sample("coins.png").read_bytes())
    note_dir = "The scale bar is in the legend, bottom right."
    note_tag = "Doors are drawn as quarter circles."
    assert cli(home, "remember", note_dir, "--scope", str(folder)).returncode == 0
    assert cli(home, "remember", note_tag, "--scope", "tag:plans").returncode == 0

    def asked(image, *extra):
        with ScriptedGemini([reply.text("ok")]) as server:
            result = cli(home, "ask", image, "What is the width?", "--sandbox", "local", *extra, server=server)
        assert result.returncode == 0, result.stderr
        return system_text(server.requests[0])

    in_folder = asked(str(folder / "floor.png"))
    assert note_dir in in_folder and note_tag not in in_folder
    tagged = asked(str(sample("coins.png")), "--tag", "plans")
    assert note_tag in tagged and note_dir not in tagged
    neither = asked(str(sample("coins.png")))
    assert note_dir not in neither and note_tag not in neither

    bad = cli(home, "remember", "x", "--scope", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "--scope" in bad.stderr
    assert cli(home, "remember", "  ").returncode == 2


def test_memory_show_edit_rm(tmp_path):
    home = make_home(tmp_path / "home")
    made = cli(home, "remember", "Measure in millimetres.")
    item_id = made.stdout.split()[1]
    assert "Measure in millimetres." in cli(home, "memory", "show", item_id).stdout
    assert cli(home, "memory", "edit", item_id, "--text", "Measure in inches.").returncode == 0
    assert json.loads(cli(home, "memory", "show", item_id, "--json").stdout)["text"] == "Measure in inches."
    # The edit is what later runs get and search finds.
    with ScriptedGemini([reply.text("ok")]) as server:
        cli(home, "ask", str(sample("coins.png")), "Measure the inches across the coin", "--sandbox", "local",
            server=server)
    assert "Measure in inches." in system_text(server.requests[0])
    no_tty = cli(home, "memory", "edit", item_id)
    assert no_tty.returncode == 2 and "--text" in no_tty.stderr
    assert cli(home, "memory", "rm", item_id).returncode == 0
    assert json.loads(cli(home, "memory", "--json").stdout) == []
    assert cli(home, "memory", "show", item_id).returncode == 2


def test_a_chat_gets_new_corrections_on_a_later_turn_only_once(tmp_path):
    from agentic_vision import Agent
    from agentic_vision.models.gemini import GeminiModel
    from agentic_vision.store import open_store

    home = make_home(tmp_path / "home")
    os.environ["AGENTIC_VISION_HOME"] = str(home)
    try:
        store = open_store()
        store.add_memory("Rockets in these photos are always Saturn V.")
        with ScriptedGemini([reply.text("a"), reply.text("b"), reply.text("c")]) as server:
            model = GeminiModel("gemini-3-flash-preview", api_key="k", base_url=server.url)
            with Agent(model, sandbox="local", store=store).chat() as chat:
                first = chat.send("What is in the sky?", images=[sample("rocket.jpg")])
                second = chat.send("Which rockets are these?")
                third = chat.send("And the rocket's height?")
        assert first.memory_used == [] and "Saturn V" not in system_text(server.requests[0])
        assert [m["text"] for m in second.memory_used] == ["Rockets in these photos are always Saturn V."]
        assert any("Saturn V" in text for text in user_texts(server.requests[1]))
        assert third.memory_used == []  # given once per conversation
        logged = store.runs(limit=10, oldest_first=True)
        assert [r.turn_index for r in logged] == [0, 1, 2] and len({r.conversation_id for r in logged}) == 1
        store.close()
    finally:
        del os.environ["AGENTIC_VISION_HOME"]
