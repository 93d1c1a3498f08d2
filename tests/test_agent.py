"""The loop on Gemini: the real google-genai SDK over HTTP against a scripted server.

What goes on the wire (parts, signatures, image placement, pruning notes, errors, retries);
the loop's own rules are in test_loop.py, with the in-memory scripted model.
"""

from __future__ import annotations

import io

import pytest
from google.genai import types
from PIL import Image

from agentic_vision import Agent
from agentic_vision.models.gemini import GeminiModel
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

MODEL = "gemini-3-flash-preview"


def agent_for(server, model=MODEL, **settings):
    gemini = GeminiModel(model, api_key="test-key", base_url=server.url, retries=settings.pop("retries", 0))
    return Agent(model=gemini, sandbox="local", **settings)


def code(text: str) -> dict:
    return {"code": text}


def last_response(request) -> dict:
    return request.function_responses()[-1]["response"]


CROP = "from PIL import Image\nimg = Image.open('coins.png')\nprint(img.size)\nimg.crop((0, 0, 120, 90)).show()"


def test_zoom_then_answer_from_the_crop():
    seen = {}

    def answer(request):
        seen["images"] = request.images()
        seen["response"] = last_response(request)
        return reply.text("There are 24 coins.")

    script = [reply.call("run_python", code(CROP), thought="Zoom on the top-left coins."), answer]
    with ScriptedGemini(script) as server:
        result = agent_for(server).run("How many coins are there?", images=[sample("coins.png")])
    assert result.answer == "There are 24 coins."
    assert result.stop_reason == "answered"
    assert [s.outcome for s in result.steps] == ["OUTCOME_OK"]
    assert result.steps[0].output == "(384, 303)\n"
    assert (result.steps[0].images[0].width, result.steps[0].images[0].height) == (120, 90)
    # Gemini 3: the crop travelled inside the function response, and the input beside the question.
    assert seen["response"] == {"outcome": "OUTCOME_OK", "output": "(384, 303)\n"}
    wheres = sorted(im.where for im in seen["images"])
    assert any("functionResponse" in w for w in wheres)
    crop = [im for im in seen["images"] if "functionResponse" in im.where][0]
    assert Image.open(io.BytesIO(crop.data)).size == (120, 90)
    # The first request described the tool truthfully.
    first = server.requests[0].body
    declaration = first["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "run_python"
    assert "coins.png" in declaration["description"] and "30 seconds" in declaration["description"]
    assert "numpy" in declaration["description"]
    # Usage is summed over both calls, as the server counted it.
    expected = [r.response["usageMetadata"] for r in server.requests]
    assert result.usage.prompt_tokens == sum(u["promptTokenCount"] for u in expected)
    assert result.usage.output_tokens == sum(u.get("candidatesTokenCount", 0) for u in expected)
    assert result.usage.thoughts_tokens == sum(u.get("thoughtsTokenCount", 0) for u in expected)


def test_parts_have_the_hosted_shape():
    script = [reply.call("run_python", code(CROP), thought="Zoom."), reply.text("24")]
    with ScriptedGemini(script) as server:
        result = agent_for(server).run("How many coins?", images=[sample("coins.png")])
    kinds = []
    for part in result.parts:
        assert isinstance(part, types.Part)
        if part.executable_code:
            kinds.append("executable_code")
            assert part.executable_code.language == types.Language.PYTHON and part.executable_code.code == CROP
        elif part.code_execution_result:
            kinds.append("code_execution_result")
            assert part.code_execution_result.outcome == types.Outcome.OUTCOME_OK
        elif part.inline_data:
            kinds.append("inline_data")
            assert part.inline_data.mime_type == "image/png"
        elif part.thought:
            kinds.append("thought")
        else:
            kinds.append("text")
    assert kinds == ["thought", "executable_code", "code_execution_result", "inline_data", "text"]


def test_images_beside_the_function_response_for_models_that_refuse_them_inside():
    script = [reply.call("run_python", code(CROP)), reply.text("24")]
    with ScriptedGemini(script, multimodal_function_responses=False) as server:
        result = agent_for(server).run("How many coins?", images=[sample("coins.png")])
    assert result.answer == "24"
    refused = [r for r in server.requests if r.status == 400]
    assert len(refused) == 1 and "function" in refused[0].error.lower()
    accepted = server.requests[-1]
    assert accepted.status == 200
    assert all("functionResponse" not in im.where for im in accepted.images())
    assert len(accepted.images()) == 2  # the input and the crop, both as parts


def test_images_as_parts_when_asked_for_from_the_start():
    script = [reply.call("run_python", code(CROP)), reply.text("24")]
    with ScriptedGemini(script, multimodal_function_responses=False) as server:
        gemini = GeminiModel(MODEL, api_key="k", base_url=server.url, retries=0, image_delivery="parts")
        result = Agent(model=gemini, sandbox="local").run("How many coins?", images=[sample("coins.png")])
    assert result.answer == "24"
    assert [r.status for r in server.requests] == [200, 200]


def test_a_forced_answer_is_asked_with_function_calling_off():
    seen = {}

    def final(request):
        seen["text"] = request.contents[-1]["parts"][-1].get("text", "")
        seen["tool_config"] = request.body.get("toolConfig")
        return reply.text("Nothing computed.")

    script = [reply.call("run_python", code("1 / 0"))] * 2 + [final]
    with ScriptedGemini(script) as server:
        result = agent_for(server, max_retries=1).run("Compute.", images=[sample("coins.png")])
    assert result.stop_reason == "retries_exhausted" and result.answer == "Nothing computed."
    assert "No more code will run" in seen["text"]
    assert seen["tool_config"]["functionCallingConfig"]["mode"] == "NONE"


def test_429_is_retried_then_succeeds():
    script = [reply.error(429), reply.error(503), reply.text("fine")]
    with ScriptedGemini(script) as server:
        # The SDK's own retry machinery does the work; a short backoff for the test.
        gemini = GeminiModel(MODEL, api_key="k", base_url=server.url, retries=3, retry_delay=0.01)
        result = Agent(model=gemini, sandbox="local").run("Hi?", images=[sample("coins.png")])
    assert result.answer == "fine"
    assert [r.status for r in server.requests] == [429, 503, 200]


@pytest.mark.parametrize(
    "status, message",
    [(400, "the model API answered 400 INVALID_ARGUMENT"), (403, "the API key was refused"), (404, "unknown model")],
)
def test_client_errors_end_the_run_with_one_line(status, message):
    with ScriptedGemini([reply.error(status)]) as server:
        result = agent_for(server).run("Hi?", images=[sample("coins.png")])
    assert result.stop_reason == "model_error"
    assert result.answer is None
    assert result.error.startswith(message) and "\n" not in result.error
    assert len(server.requests) == 1


def test_multi_turn_chat_keeps_the_sandbox_and_the_history():
    script = [
        reply.call("run_python", code("from PIL import Image\nsize = Image.open('coins.png').size\nprint(size)")),
        reply.text("It is 384 pixels wide."),
        reply.call("run_python", code("import os\nprint(size[1], sorted(os.listdir('.')))")),
        lambda request: reply.text(f"{len(request.contents)} turns so far"),
    ]
    with ScriptedGemini(script) as server:
        agent = agent_for(server)
        with agent.chat() as chat:
            first = chat.send("How wide is it?", images=[sample("coins.png")])
            second = chat.send("And how tall? Here is another.", images=[sample("rocket.jpg")])
    assert first.answer == "It is 384 pixels wide."
    assert second.steps[0].output == "303 ['coins.png', 'rocket.jpg']\n"
    # user, model(call), user(response), model(text), user, model(call), user(response)
    assert second.answer == "7 turns so far"


def test_observation_images_beyond_the_budget_become_notes():
    show = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 50, 50)).show()"
    script = [reply.call("run_python", code(show)) for _ in range(3)] + [reply.text("ok")]
    with ScriptedGemini(script) as server:
        result = agent_for(server, max_context_images=1).run("Look.", images=[sample("coins.png")])
    assert result.answer == "ok"
    last = server.requests[-1]
    in_responses = [im for im in last.images() if "functionResponse" in im.where]
    assert len(in_responses) == 1  # only the newest crop is still an image
    assert str(last.body).count("was removed to save context") == 2
    assert len(last.images()) == 2  # plus the input, which is never pruned


def test_files_are_in_the_working_directory():
    script = [
        reply.call("run_python", code("import pandas as pd\nprint(len(pd.read_csv('msft.csv')))")),
        lambda request: reply.text(last_response(request)["output"].strip()),
    ]
    with ScriptedGemini(script) as server:
        result = agent_for(server).run("How many rows?", images=[sample("coins.png")], files=[sample("msft.csv")])
    assert result.answer == "65"
    assert "msft.csv" in server.requests[0].body["tools"][0]["functionDeclarations"][0]["description"]


def test_signatures_travel_back_unchanged():
    script = [reply.call("run_python", code("print(1)")), reply.call("run_python", code("print(2)")), reply.text("2")]
    with ScriptedGemini(script) as server:
        result = agent_for(server).run("Count.", images=[sample("coins.png")])
    assert result.answer == "2"
    assert all(r.status == 200 for r in server.requests)
    history = server.requests[-1].contents
    signed = [p for c in history if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
    assert len(signed) == 2 and all(p.get("thoughtSignature") for p in signed)


def test_a_guard_refusal_comes_back_as_a_failed_run():
    script = [reply.call("run_python", code("import ctypes")), lambda r: reply.text(last_response(r)["output"])]
    with ScriptedGemini(script) as server:
        result = agent_for(server).run("Net?", images=[sample("coins.png")])
    assert result.steps[0].outcome == "OUTCOME_FAILED"
    assert "import of 'ctypes' is not allowed in this sandbox" in result.answer


def test_observation_images_sent_as_parts_also_become_notes_beyond_the_budget():
    show = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 50, 50)).show()"
    script = [reply.call("run_python", code(show)) for _ in range(3)] + [reply.text("ok")]
    with ScriptedGemini(script, multimodal_function_responses=False) as server:
        gemini = GeminiModel(MODEL, api_key="k", base_url=server.url, retries=0, image_delivery="parts")
        result = Agent(model=gemini, sandbox="local", max_context_images=1).run("Look.", images=[sample("coins.png")])
    assert result.answer == "ok"
    last = server.requests[-1]
    assert str(last.body).count("was removed to save context") == 2
    assert len(last.images()) == 2  # the input and the newest crop
