"""The loop's own rules (failed runs, the retry cap, the step limit, the image budget, blind mode),
with the in-memory ScriptedModel: no HTTP, and code runs in the real local sandbox.

What each provider puts on the wire for the same events is tested in test_agent.py (Gemini) and
test_openai_backend.py (OpenAI-compatible).
"""

from __future__ import annotations

from agentic_vision import Agent
from agentic_vision.errors import ModelError
from agentic_vision.loop.prompt import SYSTEM, TOOL_NAME
from agentic_vision.testing import Observed, ScriptedModel, call
from conftest import sample

CROP = "from PIL import Image\nimg = Image.open('coins.png')\nprint(img.size)\nimg.crop((0, 0, 120, 90)).show()"
SHOW = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 50, 50)).show()"


def scripted(script, **settings) -> tuple[ScriptedModel, Agent]:
    model = ScriptedModel(script)
    return model, Agent(model=model, sandbox="local", **settings)


def test_the_conversation_starts_with_the_prompt_the_tool_and_the_question():
    model, agent = scripted(["24"])
    result = agent.run("How many coins?", images=[sample("coins.png")])
    model.assert_complete()
    conversation = model.conversation
    assert result.answer == "24" and result.model == "scripted"
    assert conversation.system == SYSTEM
    assert conversation.tool.name == TOOL_NAME
    assert "coins.png" in conversation.tool.description and "30 seconds" in conversation.tool.description
    [message] = conversation.user_messages
    assert message.text == "How many coins?"
    assert [(im.width, im.height, im.label) for im in message.images] == [(384, 303, "coins.png")]


def test_an_error_then_a_fix():
    script = [
        call("img = Image.open('coins.png')"),
        lambda conversation: call("from PIL import Image\nprint(Image.open('coins.png').mode)")
        if "NameError" in conversation.observations[-1].output else "unexpected",
        "The image is greyscale.",
    ]
    model, agent = scripted(script)
    result = agent.run("Is it greyscale?", images=[sample("coins.png")])
    model.assert_complete()
    assert [s.outcome for s in result.steps] == ["OUTCOME_FAILED", "OUTCOME_OK"]
    assert "NameError" in result.steps[0].output
    assert result.steps[1].output == "L\n"
    assert result.answer == "The image is greyscale."


def test_a_timeout_is_reported_to_the_model():
    script = [
        call("import time\nprint('working', flush=True)\ntime.sleep(60)"),
        lambda conversation: conversation.observations[-1].outcome,
    ]
    model, agent = scripted(script, timeout=1.5)
    result = agent.run("Wait for it.", images=[sample("coins.png")])
    model.assert_complete()
    assert result.steps[0].outcome == "OUTCOME_DEADLINE_EXCEEDED"
    assert result.steps[0].output.startswith("working\n")
    assert result.answer == "OUTCOME_DEADLINE_EXCEEDED"
    assert "time limit of 1.5 s" in model.conversation.observations[-1].output


def test_failures_up_to_the_retry_cap_then_an_answer_without_code():
    seen = {}

    def final(conversation):
        seen["note"] = conversation.notes[-1]
        seen["allow_tools"] = conversation.generations[-1].allow_tools
        return "I could not compute it."

    model, agent = scripted([call("1 / 0")] * 3 + [final], max_retries=2)
    result = agent.run("Compute.", images=[sample("coins.png")])
    model.assert_complete()
    assert result.stop_reason == "retries_exhausted"
    assert len(result.steps) == 3 and all(s.outcome == "OUTCOME_FAILED" for s in result.steps)
    assert result.answer == "I could not compute it."
    assert "No more code will run" in seen["note"] and "3 runs in a row failed" in seen["note"]
    assert seen["allow_tools"] is False  # on the wire: test_a_forced_answer_is_asked_with_function_calling_off
    assert [g.allow_tools for g in model.conversation.generations] == [True, True, True, False]


def test_a_success_resets_the_failure_count():
    model, agent = scripted([call("1 / 0"), call("print(1)"), call("1 / 0"), "done"], max_retries=1)
    result = agent.run("Go.", images=[sample("coins.png")])
    model.assert_complete()
    assert result.stop_reason == "answered" and len(result.steps) == 3
    assert model.conversation.notes == []


def test_max_steps():
    model, agent = scripted([call(f"print({i})") for i in range(2)] + ["partial answer"], max_steps=2)
    result = agent.run("Go.", images=[sample("coins.png")])
    model.assert_complete()
    assert result.stop_reason == "max_steps"
    assert [s.output for s in result.steps] == ["0\n", "1\n"]
    assert result.answer == "partial answer"
    assert "the limit of 2 steps is reached" in model.conversation.notes[-1]
    assert model.conversation.generations[-1].allow_tools is False


def test_code_asked_for_after_the_limit_is_not_run_but_answered():
    model, agent = scripted([call("print(1)"), call("print(2)", text="It printed 1.")], max_steps=1)
    result = agent.run("Go.", images=[sample("coins.png")])
    model.assert_complete()
    assert result.stop_reason == "max_steps" and result.answer == "It printed 1."
    assert [s.output for s in result.steps] == ["1\n"]
    last = model.conversation.log[-1]  # the history stays well-formed for a next chat turn
    assert isinstance(last, Observed)
    assert [(o.call.code, o.outcome, o.output) for o in last.observations] == [
        ("print(2)", "OUTCOME_FAILED", "not run: no more code will run")]


def test_a_model_error_ends_the_run_with_its_message():
    events = []
    model = ScriptedModel([call("print(1)"), ModelError("the API key was refused")])
    agent = Agent(model=model, sandbox="local", on_event=lambda event, payload: events.append((event, payload)))
    result = agent.run("Hi?", images=[sample("coins.png")])
    model.assert_complete()
    assert result.stop_reason == "model_error" and result.answer is None
    assert result.error == "the API key was refused"
    assert [s.output for s in result.steps] == ["1\n"]
    [error] = [data for event, data in events if event == "model_error"]
    assert error["message"] == "the API key was refused"
    assert isinstance(error["exception"], ModelError)  # the cause stays reachable (the gateway maps its status)


def test_observation_images_beyond_the_budget_become_notes():
    seen = {}

    def last(conversation):
        seen["context"] = [(im.width, im.height, im.label) for im in conversation.context_images]
        return "ok"

    model, agent = scripted([call(SHOW)] * 3 + [last], max_context_images=1)
    result = agent.run("Look.", images=[sample("coins.png")])
    model.assert_complete()
    assert result.answer == "ok"
    conversation = model.conversation
    # Before every turn the loop asks to keep one; the input is never pruned.
    assert [(p.keep, p.removed) for p in conversation.prunes] == [(1, 0), (1, 0), (1, 1), (1, 1)]
    assert seen["context"] == [(384, 303, "coins.png"), (50, 50, "step 3 image 1")]
    assert [im.label for im in conversation.pruned] == ["step 1 image 1", "step 2 image 1"]
    assert all(len(step.images) == 1 for step in result.steps)  # the trace keeps every image


def test_a_negative_image_budget_keeps_every_image():
    model, agent = scripted([call(SHOW)] * 2 + ["ok"], max_context_images=-1)
    agent.run("Look.", images=[sample("coins.png")])
    model.assert_complete()
    assert model.conversation.prunes == []
    assert len(model.conversation.context_images) == 3


def test_blind_mode_withholds_the_images():
    model, agent = scripted([call(CROP), "ok"], show_images=False)
    result = agent.run("Look.", images=[sample("coins.png")])
    model.assert_complete()
    assert len(result.steps[0].images) == 1  # the run made it, the trace keeps it
    assert len(model.conversation.context_images) == 1  # only the input went to the model
    [observation] = model.conversation.observations
    assert observation.images == []
    assert "not shown" in observation.output


def test_a_chat_is_one_conversation_and_new_files_are_announced():
    script = [call("x = 41"), "set", call("import os\nprint(x + 1, sorted(os.listdir('.')))"), "42"]
    model, agent = scripted(script)
    with agent.chat() as chat:
        chat.send("Set x.", images=[sample("coins.png")])
        second = chat.send("And now?", images=[sample("rocket.jpg")])
    model.assert_complete()
    assert second.steps[0].output == "42 ['coins.png', 'rocket.jpg']\n"
    first, then = model.conversation.user_messages
    assert first.text == "Set x."
    assert then.text == "And now?\n\n(New files in the working directory: rocket.jpg.)"
    assert [im.label for im in then.images] == ["rocket.jpg"]
