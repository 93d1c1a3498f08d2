"""The OpenAI-compatible backend (openai:/ollama:), driven through the real loop.

The real ``openai`` SDK talks HTTP to the scripted chat-completions server;
code runs in the local sandbox; the images are files shipped with scikit-image.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
import skimage.data
from PIL import Image

from agentic_vision.loop.agent import Agent
from agentic_vision.errors import InputError, ModelError
from agentic_vision.models import get_model
from agentic_vision.models.openai_compat import DEFAULTS, OpenAIModel, ollama_base_url
from agentic_vision.loop.prompt import TOOL_NAME
from agentic_vision.testing.openai_server import ScriptedOpenAI, reply

DATA = Path(skimage.data.__file__).parent
COINS = DATA / "coins.png"  # 384x303 grayscale
ROCKET = DATA / "rocket.jpg"  # 640x427
RETINA = DATA / "retina.jpg"  # 1411x1411
MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"

CROP = (
    "from PIL import Image\n"
    "img = Image.open('coins.png')\n"
    "print('size', img.size)\n"
    "display(img.crop((100, 50, 260, 170)).resize((320, 240)))\n"
)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def agent(server: ScriptedOpenAI, **options) -> Agent:
    settings = {k: options.pop(k) for k in ("max_steps", "max_retries", "max_context_images") if k in options}
    return Agent(model=OpenAIModel(MODEL, base_url=server.url, **options), sandbox="local", **settings)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(server: ScriptedOpenAI, body: dict, key: str | None = None) -> tuple[int, dict]:
    """A raw HTTP request, bypassing the SDK."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(server.url + "/chat/completions", json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


# -- conversations through the loop -------------------------------------------------------


def test_zoom_the_crop_comes_back_after_the_tool_message():
    seen = {}

    def look(request):
        roles = request.roles()
        assert roles == ["system", "user", "assistant", "tool", "user"], roles
        [result] = request.tool_results()
        assert result["tool_call_id"] == request.messages[2]["tool_calls"][0]["id"]
        assert "OUTCOME_OK" in result["content"] and "size (384, 303)" in result["content"]
        crops = [im for im in request.images() if im.where.startswith("messages[4]")]
        assert len(crops) == 1, request.images()
        seen["crop"] = size_of(crops[0].data)
        return reply.text("There are 24 coins.", reasoning="The zoomed crop shows the coins clearly.",
                          usage={"prompt_tokens": 900, "completion_tokens": 30,
                                 "completion_tokens_details": {"reasoning_tokens": 12}})

    script = [reply.call(TOOL_NAME, {"code": CROP}, text="Let me zoom in.", reasoning="I should zoom in."), look]
    with ScriptedOpenAI(script) as server:
        result = agent(server).run("How many coins are there?", images=[COINS])
    assert result.stop_reason == "answered", result.error
    assert result.answer == "There are 24 coins."
    assert seen["crop"] == (320, 240)
    [step] = result.steps
    assert step.outcome == "OUTCOME_OK" and len(step.images) == 1
    assert [t.thoughts for t in result.turns] == ["I should zoom in.", "The zoomed crop shows the coins clearly."]
    assert result.turns[0].text == "Let me zoom in."
    # Usage: completion tokens include reasoning on these APIs; Usage keeps them apart.
    first = server.requests[0].response["usage"]
    assert result.usage.prompt_tokens == first["prompt_tokens"] + 900
    assert result.usage.thoughts_tokens == first["completion_tokens_details"]["reasoning_tokens"] + 12
    assert result.usage.output_tokens == first["completion_tokens"] - first["completion_tokens_details"][
        "reasoning_tokens"] + 30 - 12
    # The first request: the tool as declared, the question image as a data URL, no default temperature.
    body = server.requests[0].body
    [tool] = body["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == TOOL_NAME
    assert tool["function"]["parameters"]["required"] == ["code"]
    assert "coins.png" in tool["function"]["description"]
    assert "temperature" not in body and body["model"] == MODEL
    [question_image] = server.requests[0].images()
    assert size_of(question_image.data) == (384, 303)
    assert server.requests[0].api_key == "no-key-needed"  # a local server: the SDK gets a placeholder


def test_an_error_then_the_fix():
    def fix(request):
        result = request.tool_results()[-1]["content"]
        assert "OUTCOME_FAILED" in result and "NameError" in result, result
        return reply.call(TOOL_NAME, {"code": "from PIL import Image\nprint(Image.open('coins.png').mode)"})

    def answer(request):
        outputs = [r["content"] for r in request.tool_results()]
        assert len(outputs) == 2 and "OUTCOME_OK" in outputs[1] and "\nL" in outputs[1], outputs
        return "The image is grayscale."

    script = [reply.call(TOOL_NAME, {"code": "print(imgg.mode)"}), fix, answer]
    with ScriptedOpenAI(script) as server:
        result = agent(server).run("Is this image in color?", images=[COINS])
    assert result.answer == "The image is grayscale."
    assert [s.outcome for s in result.steps] == ["OUTCOME_FAILED", "OUTCOME_OK"]
    assert "NameError" in result.steps[0].output


def test_malformed_arguments_are_reported_back_as_a_failed_run():
    def after(request):
        result = request.tool_results()[-1]["content"]
        assert "OUTCOME_FAILED" in result and "not valid JSON" in result, result
        # The malformed call is echoed back exactly as the model sent it.
        assert request.messages[2]["tool_calls"][0]["function"]["arguments"] == '{"code": "print(1)'
        return reply.call(TOOL_NAME, {"code": "print(6 * 7)"})

    script = [reply.call(TOOL_NAME, '{"code": "print(1)'), after, "The answer is 42."]
    with ScriptedOpenAI(script) as server:
        result = agent(server).run("What is six times seven?", images=[COINS])
    assert result.stop_reason == "answered" and result.answer == "The answer is 42."
    assert [s.outcome for s in result.steps] == ["OUTCOME_FAILED", "OUTCOME_OK"]
    assert "not valid JSON" in result.steps[0].output
    assert result.steps[1].output == "42\n"


def test_calls_without_code_or_to_an_unknown_tool_are_failed_runs():
    def answer(request):
        results = [r["content"] for r in request.tool_results()]
        assert "no 'code' string argument" in results[0] and "no tool named 'search'" in results[1], results
        return "Done."

    # A hallucinated tool name, as small models make.
    rogue = reply.calls((TOOL_NAME, {"source": "print(1)"}), ("search", {"q": "coins"}), undeclared_ok=True)
    with ScriptedOpenAI([rogue, answer]) as server:
        result = agent(server).run("Count the coins.", images=[COINS])
    assert result.answer == "Done."
    assert [s.outcome for s in result.steps] == ["OUTCOME_FAILED", "OUTCOME_FAILED"]


def test_parallel_calls_get_one_tool_message_each_and_one_user_message_of_images():
    def answer(request):
        assert request.roles() == ["system", "user", "assistant", "tool", "tool", "user"]
        ids = [c["id"] for c in request.messages[2]["tool_calls"]]
        assert [r["tool_call_id"] for r in request.tool_results()] == ids
        assert len([im for im in request.images() if im.where.startswith("messages[5]")]) == 2
        return "Two crops seen."

    show = "from PIL import Image\ndisplay(Image.open('rocket.jpg').crop(({x}, 0, {x} + 100, 100)))"
    script = [reply.calls((TOOL_NAME, {"code": show.format(x=0)}), (TOOL_NAME, {"code": show.format(x=200)})), answer]
    with ScriptedOpenAI(script) as server:
        result = agent(server).run("Compare the left and the middle.", images=[ROCKET])
    assert result.answer == "Two crops seen." and len(result.steps) == 2


@pytest.mark.parametrize("refusal", [
    "registry.ollama.ai/library/{model} does not support tools",  # Ollama
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',  # vLLM
    "tools param requires --jinja flag",  # llama.cpp
])
def test_no_tools_the_fenced_block_protocol_is_chosen_automatically(refusal):
    def first(request):
        assert "tools" not in request.body
        system = request.system_text()
        assert "```python" in system and "final answer" in system and "coins.png" in system
        return reply.text("I will crop the middle.\n\n```python\n" + CROP + "```\n")

    def second(request):
        assert request.roles() == ["system", "user", "assistant", "user"]
        last = request.last_user_text()
        assert "Result of your code block" in last and "OUTCOME_OK" in last and "size (384, 303)" in last
        crops = [im for im in request.images() if im.where.startswith("messages[3]")]
        assert [size_of(im.data) for im in crops] == [(320, 240)]
        return reply.text("There are 24 coins.")

    with ScriptedOpenAI([first, second], supports_tools=False, tools_error=refusal) as server:
        model = OpenAIModel(MODEL, base_url=server.url)
        result = Agent(model=model, sandbox="local").run("How many coins?", images=[COINS])
    assert result.stop_reason == "answered", result.error
    assert result.answer == "There are 24 coins."
    assert result.turns[0].text == "I will crop the middle."
    [step] = result.steps
    assert step.outcome == "OUTCOME_OK" and len(step.images) == 1
    # The refusal did not use a script step; the model remembers the protocol.
    assert [r.status for r in server.requests] == [400, 200, 200]
    assert server.requests[0].error == refusal.format(model=MODEL)
    assert model.learned_protocol == "text"


def test_the_learned_protocol_is_used_from_the_start_next_time():
    with ScriptedOpenAI(["First.", "Second."], supports_tools=False) as server:
        model = OpenAIModel(MODEL, base_url=server.url)
        chat_agent = Agent(model=model, sandbox="local")
        assert chat_agent.run("One?", images=[COINS]).answer == "First."
        assert chat_agent.run("Two?", images=[COINS]).answer == "Second."
    assert [r.status for r in server.requests] == [400, 200, 200]  # one refusal only


def test_text_protocol_by_setting_with_gemma_style_blocks_and_a_forced_answer():
    def first(request):
        assert "tools" not in request.body
        return reply.text("```tool_code\nprint(sum(range(10)))\n```")

    def forced(request):
        last = request.last_user_text()
        assert "45" in last and "No more code will run" in last, last
        return reply.text("The sum is 45.\n```python\nprint('ignored')\n```")

    with ScriptedOpenAI([first, forced]) as server:  # the server does tools; the setting says text
        result = agent(server, tool_protocol="text", max_steps=1).run("Sum 0..9?", images=[COINS])
    assert result.stop_reason == "max_steps"
    assert result.answer == "The sum is 45."
    assert [s.output for s in result.steps] == ["45\n"]


def test_a_forced_answer_in_native_mode_sends_no_tools():
    def forced(request):
        assert "tools" not in request.body
        assert request.roles()[-2:] == ["tool", "user"]
        assert "No more code will run" in request.last_user_text()
        return reply.text("45, from the run.", reasoning="The run printed 45.")

    with ScriptedOpenAI([reply.call(TOOL_NAME, {"code": "print(sum(range(10)))"}), forced],
                        reasoning_field="reasoning") as server:  # Ollama's field name
        result = agent(server, max_steps=1).run("Sum 0..9?", images=[COINS])
    assert result.stop_reason == "max_steps" and result.answer == "45, from the run."
    assert result.turns[-1].thoughts == "The run printed 45."
    assert "tools" in server.requests[0].body


def test_native_protocol_by_setting_does_not_fall_back():
    with ScriptedOpenAI(["unused"], supports_tools=False) as server:
        result = agent(server, tool_protocol="native").run("How many coins?", images=[COINS])
    assert result.stop_reason == "model_error"
    assert "does not support tool calling" in result.error and "tool_protocol='text'" in result.error
    assert "\n" not in result.error and server.remaining == 1


def test_old_observation_images_are_pruned_to_max_images():
    show = "from PIL import Image\ndisplay(Image.open('coins.png').crop(({x}, 0, {x} + 64, 64)))"

    def third(request):
        images = request.images()
        # The question image and only the newest crop; the older crop is a note now.
        assert [im.where for im in images] == ["messages[1].content[1]", "messages[7].content[2]"], images
        assert "[an earlier image (step 1 image 1), 64x64, was removed to save context]" in json.dumps(
            request.messages[4]["content"])
        return "Done."

    script = [reply.call(TOOL_NAME, {"code": show.format(x=0)}), reply.call(TOOL_NAME, {"code": show.format(x=100)}),
              third]
    with ScriptedOpenAI(script) as server:
        result = agent(server, max_images=1).run("Look at two corners.", images=[COINS])
    assert result.answer == "Done."
    assert len(server.requests[1].images()) == 2  # nothing to prune yet


def test_images_are_downscaled_to_max_image_side():
    def check(request):
        [image] = request.images()
        assert size_of(image.data) == (500, 500)
        assert "(500x500)" in request.first_user_text()
        return "A retina."

    with ScriptedOpenAI([check]) as server:
        result = agent(server, max_image_side=500).run("What is this?", images=[RETINA])
    assert result.answer == "A retina."


# -- errors --------------------------------------------------------------------------------


def test_connection_refused_names_the_url_before_any_sandbox_starts():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    agent = Agent(model=f"openai:{MODEL}", model_options={"base_url": url, "retries": 0}, sandbox="local")
    with pytest.raises(ModelError) as info:
        agent.run("How many coins?", images=[COINS])
    assert str(info.value) == (f"cannot reach the model API at {url}: Connection refused "
                               "(check --base-url / OPENAI_BASE_URL)")


def test_429_then_success_is_retried_by_the_sdk():
    script = [reply.error(429, "Rate limit reached for requests.", retry_after=0.01), "Seven."]
    with ScriptedOpenAI(script) as server:
        result = agent(server).run("How many?", images=[COINS])
    assert result.answer == "Seven."
    assert [r.status for r in server.requests] == [429, 200]


def test_5xx_retries_run_out():
    script = [reply.error(503, "Service unavailable.", retry_after=0.01)] * 2
    with ScriptedOpenAI(script) as server:
        result = agent(server, retries=1).run("How many?", images=[COINS])
    assert result.stop_reason == "model_error"
    assert result.error == f"{server.url} answered 503 even after 1 retries: Service unavailable."


@pytest.mark.parametrize("server_options, options, expected", [
    ({"api_key": "right"}, {"api_key": "wrong"}, "the API key was refused by {url} (401)"),
    ({"models": ["other"]}, {}, "unknown model 'Qwen/Qwen2.5-VL-7B-Instruct' at {url} (404)"),
    ({"supports_images": False}, {}, "model Qwen/Qwen2.5-VL-7B-Instruct does not accept images (400)"),
])
def test_refusals_are_one_line_model_errors(server_options, options, expected):
    with ScriptedOpenAI(["unused"], **server_options) as server:
        result = agent(server, **options).run("How many?", images=[COINS])
    assert result.stop_reason == "model_error"
    assert result.error.startswith(expected.format(url=server.url)), result.error
    assert "\n" not in result.error and server.remaining == 1


def test_openai_without_a_key_is_an_input_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InputError) as refused:
        Agent(model="openai:gpt-4.1-mini", sandbox="local").run("How many coins?", images=[COINS])
    assert "OPENAI_API_KEY" in str(refused.value) and "\n" not in str(refused.value)


def test_openai_key_and_base_url_from_the_environment(monkeypatch):
    with ScriptedOpenAI(["From the environment."], api_key="sk-test") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        result = Agent(model="openai:gpt-4.1-mini", sandbox="local").run("Hi?", images=[COINS])
    assert result.answer == "From the environment." and result.model == "openai:gpt-4.1-mini"
    assert server.requests[0].api_key == "sk-test" and server.requests[0].model == "gpt-4.1-mini"


# -- routing and settings --------------------------------------------------------------------


def test_ollama_name_routes_to_ollama_host(monkeypatch):
    def check(request):
        assert request.model == "qwen2.5vl" and request.body["temperature"] == 0.2
        [image] = request.images()
        assert max(size_of(image.data)) == 1024  # the ollama default max side
        return "A retina, seen through Ollama."

    with ScriptedOpenAI([check]) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.address)  # host:port, as Ollama users set it
        monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
        result = Agent(model="ollama:qwen2.5vl", sandbox="local").run("What is this?", images=[RETINA])
    assert result.answer == "A retina, seen through Ollama." and result.model == "ollama:qwen2.5vl"
    assert server.requests[0].path == "/v1/chat/completions"


def test_ollama_not_running(monkeypatch):
    port = closed_port()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{port}")
    agent = Agent(model="ollama:qwen2.5vl", model_options={"retries": 0}, sandbox="local")
    with pytest.raises(ModelError, match=rf"cannot reach the model API at http://127.0.0.1:{port}/v1: "
                                         r"Connection refused \(check OLLAMA_HOST, or start the server: ollama serve\)"):
        agent.run("What is this?", images=[COINS])


@pytest.mark.parametrize("host, url", [
    (None, "http://localhost:11434/v1"),
    ("", "http://localhost:11434/v1"),
    ("0.0.0.0", "http://localhost:11434/v1"),
    ("0.0.0.0:11500", "http://localhost:11500/v1"),
    ("gpu-box:8080", "http://gpu-box:8080/v1"),
    ("https://ollama.example.com", "https://ollama.example.com:443/v1"),
    ("http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1"),
])
def test_ollama_host_forms(monkeypatch, host, url):
    if host is None:
        monkeypatch.delenv("OLLAMA_HOST", raising=False)
    else:
        monkeypatch.setenv("OLLAMA_HOST", host)
    assert ollama_base_url() == url


def test_get_model_routing_and_defaults(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    hosted = get_model("openai:gpt-4.1-mini")
    local = get_model(f"openai:{MODEL}", base_url="http://localhost:8000/v1")
    ollama = get_model("ollama:gemma3:4b", max_images=2)
    assert (hosted.kind, hosted.base_url, hosted.temperature) == ("openai", "https://api.openai.com/v1", None)
    assert (local.kind, local.model, local.max_image_side) == ("server", MODEL, DEFAULTS["server"]["max_image_side"])
    assert (ollama.kind, ollama.model, ollama.base_url) == ("ollama", "gemma3:4b", "http://localhost:11434/v1")
    assert (ollama.max_image_side, ollama.temperature, ollama.max_images) == (1024, 0.2, 2)
    with pytest.raises(InputError, match="unknown option"):
        get_model("ollama:qwen2.5vl", media_resolution="high")  # a Gemini option
    with pytest.raises(InputError, match="tool_protocol"):
        get_model("ollama:qwen2.5vl", tool_protocol="xml")


# -- the scripted server itself ---------------------------------------------------------------

PNG = (lambda buf: (Image.new("RGB", (8, 8), "red").save(buf, "PNG"), buf.getvalue())[1])(io.BytesIO())
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
CALL = {"id": "call_1", "type": "function", "function": {"name": "run_python", "arguments": "{}"}}
TOOLS = [{"type": "function", "function": {"name": "run_python", "parameters": {"type": "object"}}}]


def chat(*messages, **extra) -> dict:
    return {"model": "m", "messages": list(messages), **extra}


def user(content) -> dict:
    return {"role": "user", "content": content}


def image_part(url: str = PNG_URL) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("body, message", [
    (chat(), "'messages' must be a non-empty array"),
    ({"messages": [user("hi")]}, "you must provide a model parameter"),
    (chat({"role": "bot", "content": "hi"}), "Supported values are"),
    (chat(user([image_part()]), {"role": "assistant", "tool_calls": [CALL], "content": None},
          {"role": "tool", "tool_call_id": "call_1", "content": [image_part()]}),
     "image content is not supported in tool messages"),
    (chat(user("go"), {"role": "assistant", "content": None, "tool_calls": [CALL]}, user("next")),
     "did not have response messages before messages[2]: call_1"),
    (chat(user("go"), {"role": "assistant", "content": None, "tool_calls": [CALL]}),
     "did not have response messages before the end"),
    (chat(user("go"), {"role": "assistant", "content": None, "tool_calls": [CALL]},
          {"role": "tool", "tool_call_id": "call_1", "content": "a"},
          {"role": "tool", "tool_call_id": "call_1", "content": "b"}), "answered twice"),
    (chat(user("go"), {"role": "tool", "tool_call_id": "call_1", "content": "a"}), "must be a response to a preceding"),
    (chat(user("go"), {"role": "assistant", "content": None}), "Missing required parameter: 'messages[1].content'"),
    (chat(user("go"), {"role": "assistant", "content": None, "tool_calls": [
        {**CALL, "function": {"name": "run_python", "arguments": {"code": "1"}}}]},
          {"role": "tool", "tool_call_id": "call_1", "content": "a"}), "expected a string, but got dict"),
    (chat(user([image_part("data:image/jpeg;base64," + base64.b64encode(PNG).decode())])),
     "declares image/jpeg but the bytes are image/png"),
    (chat(user([image_part("data:image/png;base64,@@@")])), "the base64 does not decode"),
    (chat(user([image_part("https://example.com/cat.png")])), "does not fetch remote image URLs"),
    (chat(user([{"type": "input_audio", "input_audio": {}}])), "Supported values are: 'text' and 'image_url'"),
    (chat(user("go"), tool_choice="auto"), "only allowed when 'tools' are specified"),
    (chat(user("go"), tools=[{"type": "function", "function": {"name": "bad name!"}}]), "does not match pattern"),
    (chat(user("go"), temperature=3), "Invalid 'temperature'"),
])
def test_the_server_refuses_what_real_servers_refuse(body, message):
    with ScriptedOpenAI(["unused"]) as server:
        status, answer = post(server, body)
    assert status == 400, answer
    assert message in answer["error"]["message"] and answer["error"]["type"] == "invalid_request_error"
    assert server.remaining == 1


def test_the_server_speaks_the_sdk_wire_format():
    script = [reply.call("run_python", {"code": "print(1)"}, reasoning="thinking"), "done"]
    with ScriptedOpenAI(script, api_key="sk-right") as server:
        client = openai.OpenAI(api_key="sk-right", base_url=server.url, max_retries=0)
        question = user([image_part(), {"type": "text", "text": "go"}])
        first = client.chat.completions.create(model="m", messages=[question], tools=TOOLS)
        assert first.object == "chat.completion" and first.id.startswith("chatcmpl-")
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls
        assert call.type == "function" and json.loads(call.function.arguments) == {"code": "print(1)"}
        assert choice.message.model_extra["reasoning_content"] == "thinking"
        assert first.usage.completion_tokens_details.reasoning_tokens == 2
        assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
        second = client.chat.completions.create(model="m", tools=TOOLS, messages=[
            user("go"), choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "1"}])
        assert second.choices[0].message.content == "done" and second.choices[0].finish_reason == "stop"
        wrong = openai.OpenAI(api_key="sk-wrong", base_url=server.url, max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
            wrong.chat.completions.create(model="m", messages=[user("hi")])
    assert server.requests[0].images()[0].data == PNG


def test_script_mistakes_are_500s():
    with ScriptedOpenAI([reply.call("undeclared", {}), "one"]) as server:
        client = openai.OpenAI(api_key="x", base_url=server.url, max_retries=0)
        with pytest.raises(openai.InternalServerError, match="declares no tools"):
            client.chat.completions.create(model="m", messages=[user("hi")])
        client.chat.completions.create(model="m", messages=[user("hi")])
        with pytest.raises(openai.InternalServerError, match="script exhausted"):
            client.chat.completions.create(model="m", messages=[user("hi")])


def test_router_by_question():
    router = reply.by_question({"cats?": ["Two cats."], "dogs?": ["One dog."]})
    with ScriptedOpenAI(router=router) as server:
        client = openai.OpenAI(api_key="x", base_url=server.url, max_retries=0)
        dogs = client.chat.completions.create(model="m", messages=[user("How many dogs?")])
        cats = client.chat.completions.create(model="m", messages=[user("How many cats?")])
    assert (dogs.choices[0].message.content, cats.choices[0].message.content) == ("One dog.", "Two cats.")
