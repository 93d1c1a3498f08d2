"""``--route``: the same unchanged Gemini client code, run on an OpenAI-compatible
backend (vLLM, Ollama) -- here the scripted OpenAI server -- with the hosted response shape."""

from __future__ import annotations

import io

import pytest
from google import genai
from google.genai import types
from PIL import Image

from agentic_vision.testing.gemini_server import ScriptedGemini
from agentic_vision.testing.gemini_server import reply as reply_gemini
from agentic_vision.testing.openai_server import ScriptedOpenAI, reply
from gateway_helpers import CROP, MODEL, gateway, image_bytes

pytestmark = pytest.mark.timeout(180)
CONFIG = types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)])


def client_for(gw) -> genai.Client:
    return genai.Client(api_key="any", http_options=types.HttpOptions(base_url=gw.url))


def image_part() -> types.Part:
    return types.Part.from_bytes(data=image_bytes(), mime_type="image/png")


def test_a_routed_model_runs_the_loop_on_an_openai_compatible_server():
    script = [reply.call("run_python", {"code": CROP}, usage={"prompt_tokens": 300, "completion_tokens": 20}),
              lambda r: reply.text(f"It printed {r.tool_results()[-1]['content'].splitlines()[2]}.",
                                   usage={"prompt_tokens": 500, "completion_tokens": 10})]
    with ScriptedOpenAI(script) as backend, \
            gateway(routes=[f"vlm=openai:Qwen/Qwen2.5-VL-7B-Instruct@{backend.url}"]) as gw:
        client = client_for(gw)
        response = client.models.generate_content(model="vlm", contents=[image_part(), "Zoom into the cup."],
                                                  config=CONFIG)
    parts = response.candidates[0].content.parts
    assert parts[0].executable_code.code == CROP
    assert parts[1].code_execution_result.output == "(600, 400)\n"
    assert parts[1].code_execution_result.id == parts[0].executable_code.id
    assert Image.open(io.BytesIO(parts[2].as_image().image_bytes)).size == (300, 200)
    assert parts[3].text == "It printed (600, 400)."
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.tool_use_prompt_token_count, usage.candidates_token_count,
            usage.total_token_count) == (300, 500, 30, 830)
    assert response.model_version == "vlm"
    first = backend.requests[0]
    assert first.model == "Qwen/Qwen2.5-VL-7B-Instruct" and first.tool_names() == ["run_python"]
    assert len(first.images()) == 1


def test_a_routed_chat_replays_code_as_tool_calls():
    script = [reply.call("run_python", {"code": CROP}), "A cup.",
              reply.call("run_python", {"code": "print(6 * 7)"}), lambda r: reply.text(r.tool_results()[-1]["content"])]
    with ScriptedOpenAI(script) as backend, ScriptedGemini([]) as unused, \
            gateway(unused, routes=[f"{MODEL}=ollama:qwen2.5vl@{backend.url}"]) as gw:
        client = client_for(gw)
        chat = client.chats.create(model=MODEL, config=CONFIG)
        chat.send_message([image_part(), "Zoom into the cup."])
        second = chat.send_message("And six times seven?")
    assert second.candidates[0].content.parts[1].code_execution_result.output == "42\n"
    assert unused.requests == []  # the route took the Gemini name
    replay = backend.requests[2]
    assert replay.roles()[:6] == ["system", "user", "assistant", "tool", "user", "assistant"]
    assistant = replay.messages[2]
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"code": ' + __import__("json").dumps(CROP) + "}"
    assert replay.messages[3]["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "(600, 400)" in replay.messages[3]["content"]
    assert len(replay.images()) == 2  # the photo and the crop the run showed


def test_a_backend_without_tools_gets_the_history_as_text():
    script = ["```python\nprint(6 * 7)\n```", "Forty-two.", "```python\nprint(2 + 2)\n```", "Four."]
    with ScriptedOpenAI(script, supports_tools=False) as backend, \
            gateway(routes=[f"vlm=ollama:llava@{backend.url}"]) as gw:
        client = client_for(gw)
        chat = client.chats.create(model="vlm", config=CONFIG)
        first = chat.send_message([image_part(), "What is six times seven?"])
        second = chat.send_message("And two plus two?")
    assert first.candidates[0].content.parts[0].executable_code.code == "print(6 * 7)"
    assert [p.code_execution_result.output for p in second.candidates[0].content.parts
            if p.code_execution_result] == ["4\n"]
    replay = backend.accepted[-2]
    assert "tools" not in replay.body and "```python\nprint(6 * 7)\n```" in replay.messages[2]["content"]


def test_what_a_route_cannot_honour_is_a_clear_400():
    with ScriptedOpenAI([]) as backend, gateway(routes=[f"vlm=openai:m@{backend.url}"]) as gw:
        client = client_for(gw)
        with pytest.raises(genai.errors.ClientError) as plain:
            client.models.generate_content(model="vlm", contents="Hello")
        with pytest.raises(genai.errors.ClientError) as setting:
            client.models.generate_content(
                model="vlm", contents=[image_part(), "Zoom in."],
                config=types.GenerateContentConfig(tools=CONFIG.tools, response_logprobs=True))
    assert plain.value.code == 400 and "codeExecution" in plain.value.message
    assert setting.value.code == 400 and "responseLogprobs" in setting.value.message
    assert backend.requests == []


def test_the_model_list_is_the_routes_then_the_upstreams_models():
    with ScriptedOpenAI([]) as backend, \
            ScriptedGemini([], models=["gemini-2.5-pro", MODEL]) as upstream, \
            gateway(upstream, routes=[f"vlm=openai:m@{backend.url}", f"{MODEL}=ollama:qwen2.5vl@{backend.url}"]) as gw:
        client = client_for(gw)
        listed = list(client.models.list())
    names = [m.name for m in listed]
    assert names == ["models/vlm", f"models/{MODEL}", "models/gemini-2.5-pro"]  # the route shadows the upstream's
    assert listed[1].version == "local" and "qwen2.5vl" in listed[1].display_name
    assert listed[2].version == "scripted"
    assert [r.method for r in upstream.lookups] == ["list"] and upstream.lookups[0].api_key == "any"


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
def test_the_model_list_keeps_the_routes_when_the_upstream_fails(failure):
    from tcp_forwarder import closed_port

    with ScriptedOpenAI([]) as backend, \
            ScriptedGemini([], models_errors={"list": reply_gemini.error(500)}) as upstream:
        url = upstream.url if failure == "refused" else f"http://127.0.0.1:{closed_port()}"
        with gateway(upstream_url=url, routes=[f"vlm=openai:m@{backend.url}"]) as gw:
            client = client_for(gw)
            names = [m.name for m in client.models.list()]
        with gateway(upstream_url=url) as plain:  # no routes: the upstream's failure is the answer
            client = client_for(plain)
            with pytest.raises(genai.errors.APIError) as error:
                list(client.models.list())
    assert names == ["models/vlm"]
    assert error.value.code == (500 if failure == "refused" else 502)
    assert len(upstream.lookups) == (2 if failure == "refused" else 0)


@pytest.mark.parametrize("thinking, sent", [
    (types.ThinkingConfig(thinking_budget=0), "none"),
    (types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW), "low"),
    (types.ThinkingConfig(thinking_budget=5000), "medium"),
    (types.ThinkingConfig(thinking_budget=30000), "high"),
    (types.ThinkingConfig(include_thoughts=True), None),
    (types.ThinkingConfig(thinking_budget=-1), None),
])
def test_a_routed_models_thinking_config_is_its_reasoning_effort(thinking, sent):
    with ScriptedOpenAI(["Forty-two."]) as backend, gateway(routes=[f"vlm=openai:gpt-5.1@{backend.url}"]) as gw:
        client = client_for(gw)  # kept: a client that is collected closes its connections
        response = client.models.generate_content(
            model="vlm", contents=[image_part(), "What is six times seven?"],
            config=types.GenerateContentConfig(tools=CONFIG.tools, thinking_config=thinking))
    assert response.text == "Forty-two."
    body = backend.requests[0].body
    assert body.get("reasoning_effort") == sent
    assert ("reasoning_effort" in body) == (sent is not None)


def test_a_thinking_level_the_routed_server_lacks_is_a_400():
    with ScriptedOpenAI([]) as backend, gateway(routes=[f"vlm=ollama:qwen3-vl@{backend.url}"]) as gw:
        client = client_for(gw)
        with pytest.raises(genai.errors.ClientError) as minimal:
            client.models.generate_content(
                model="vlm", contents=[image_part(), "Zoom in."],
                config=types.GenerateContentConfig(tools=CONFIG.tools, thinking_config=types.ThinkingConfig(
                    thinking_level=types.ThinkingLevel.MINIMAL)))
        with pytest.raises(genai.errors.ClientError) as negative:
            client.models.generate_content(
                model="vlm", contents=[image_part(), "Zoom in."],
                config=types.GenerateContentConfig(tools=CONFIG.tools, thinking_config=types.ThinkingConfig(
                    thinking_budget=-5)))
        after = list(client.models.list())  # still serving
    assert minimal.value.code == 400 and "'minimal'" in minimal.value.message and "low" in minimal.value.message
    assert negative.value.code == 400 and "thinkingBudget" in negative.value.message
    assert any(m.name == "models/vlm" for m in after)
    assert backend.requests == []
