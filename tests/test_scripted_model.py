"""The in-memory ScriptedModel itself: it plays its script, records, and refuses what was not scripted."""

from __future__ import annotations

import pytest

from agentic_vision import Agent
from agentic_vision.errors import ModelError
from agentic_vision.models.base import ModelImage, Observation, ToolSpec
from agentic_vision.testing import Generate, Prune, ScriptedModel, UserMessage, call
from conftest import sample

TOOL = ToolSpec("run_python", "Runs Python.")


def image(label: str) -> ModelImage:
    return ModelImage(b"\x89PNG\r\n\x1a\n", "image/png", 8, 8, label)


def test_steps_are_played_in_order_and_recorded():
    model = ScriptedModel([call("print(1)", text="Let me run it.", thoughts="Run first."), "1"])
    conversation = model.start("be brief", TOOL)
    conversation.add_user("What does it print?", [image("q.png")])
    turn = conversation.generate()
    assert (turn.text, turn.thoughts, [c.code for c in turn.calls]) == ("Let me run it.", "Run first.", ["print(1)"])
    conversation.add_observations([Observation(turn.calls[0], "OUTCOME_OK", "1\n", [image("step 1 image 1")])],
                                  note="a note")
    assert conversation.prune_images(0) == 1
    assert conversation.generate(allow_tools=False).text == "1"
    model.assert_complete()
    assert (conversation.system, conversation.tool) == ("be brief", TOOL)
    assert conversation.log[0] == UserMessage("What does it print?", [image("q.png")])
    assert conversation.log[1] == Generate(1, True)
    assert conversation.notes == ["a note"] and conversation.observations[0].output == "1\n"
    assert conversation.prunes == [Prune(0, 1)] and conversation.generations[-1] == Generate(2, False)
    assert conversation.context_images == [image("q.png")] and conversation.pruned == [image("step 1 image 1")]


def test_one_more_generate_than_scripted_names_the_step():
    model = ScriptedModel(["only"])
    conversation = model.start("", TOOL)
    conversation.generate()
    with pytest.raises(AssertionError, match=r"generate\(\) was called for step 2, but the script has only 1 steps"):
        conversation.generate()


def test_the_loop_does_not_swallow_an_unscripted_turn():
    model = ScriptedModel([call("print(1)")])  # the loop will want a second turn
    with pytest.raises(AssertionError, match="step 2"):
        Agent(model=model, sandbox="local").run("Go.", images=[sample("coins.png")])


def test_assert_complete_names_the_first_unplayed_step():
    model = ScriptedModel(["one", call("print(2)"), "three"])
    model.start("", TOOL).generate()
    with pytest.raises(AssertionError, match=r"2 of 3 script steps were never played.*step 2 is a turn with 1 call"):
        model.assert_complete()


def test_calls_must_be_answered_before_anything_else():
    model = ScriptedModel([call("a = 1", "b = 2"), "done"])
    conversation = model.start("", TOOL)
    turn = conversation.generate()
    with pytest.raises(AssertionError, match=r"generate\(\) while the 2 call\(s\) of step 1 have no observations"):
        conversation.generate()
    with pytest.raises(AssertionError, match=r"add_user\(\) while"):
        conversation.add_user("more", [])
    with pytest.raises(AssertionError, match=r"answered 1 call\(s\), but that step asked for 2"):
        conversation.add_observations([Observation(turn.calls[0], "OUTCOME_OK", "")])
    conversation.add_observations([Observation(c, "OUTCOME_OK", "") for c in turn.calls])
    assert conversation.generate().text == "done"


def test_an_exception_step_is_raised():
    model = ScriptedModel([ModelError("quota exceeded")])
    with pytest.raises(ModelError, match="quota exceeded"):
        model.start("", TOOL).generate()
    model.assert_complete()


def test_a_step_played_twice_gets_fresh_call_ids():
    step = call("print(1)")
    model = ScriptedModel([step, step])
    conversation = model.start("", TOOL)
    ids = []
    for _ in range(2):
        turn = conversation.generate()
        ids += [c.id for c in turn.calls]
        conversation.add_observations([Observation(turn.calls[0], "OUTCOME_OK", "1\n")])
    assert ids == ["call-1-1", "call-2-1"] and step.calls[0].id is None


def test_a_function_script_answers_every_turn():
    model = ScriptedModel(lambda conversation: f"turn {len(conversation.generations)}", name="echo")
    conversation = model.start("", TOOL)
    assert [conversation.generate().text for _ in range(3)] == ["turn 1", "turn 2", "turn 3"]
    model.assert_complete()
    assert model.name == "echo"


def test_conversation_needs_exactly_one():
    model = ScriptedModel(["a", "b"])
    model.start("", TOOL)
    model.start("", TOOL)
    with pytest.raises(AssertionError, match="2 conversations were started"):
        model.conversation
    assert len(model.conversations) == 2
