"""The gateway with the real google-genai SDK, written as Gemini's code-execution docs show it.

The client code below is the documentation's, changed only by the base URL
(``GOOGLE_GEMINI_BASE_URL``) and a local image; the gateway's upstream is the
scripted Gemini server, and the code really runs in the local sandbox.
"""

from __future__ import annotations

import io
import json
import time

import pytest
from google import genai
from google.genai import types
from PIL import Image

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from agentic_vision.testing.http_server import tokens
from gateway_helpers import CROP, MODEL, gateway, image_bytes, raw_request

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def docs_env(monkeypatch):
    """What a user sets to point unchanged code at the gateway."""
    def point(gw, key: str = "client-key"):
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gw.url)
        monkeypatch.setenv("GEMINI_API_KEY", key)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return point


def crop_script(answer: str = "A cup of coffee."):
    return [
        reply.call("run_python", {"code": CROP}, thought="Zoom in first."),
        lambda request: reply.text(f"{answer} (the code printed {request.function_responses()[-1]['response']['output'].strip()})"),
    ]


@pytest.mark.parametrize("tool", [types.ToolCodeExecution, types.ToolCodeExecution()], ids=["class", "instance"])
def test_generate_content_runs_the_code_locally_in_the_hosted_shape(docs_env, tool):
    data = image_bytes()
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        # --- as in the docs ---
        client = genai.Client()
        image = types.Part.from_bytes(data=data, mime_type="image/png")
        response = client.models.generate_content(
            model=MODEL,
            contents=[image, "Zoom into the cup and tell me what is in it."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=tool)]),
        )
        codes, outputs, images, texts = [], [], [], []
        for part in response.candidates[0].content.parts:
            if part.executable_code is not None:
                codes.append(part.executable_code)
            if part.code_execution_result is not None:
                outputs.append(part.code_execution_result)
            if part.as_image() is not None:
                images.append(part.as_image())
            if part.text is not None:
                texts.append(part.text)
        # --- what the docs' reader gets ---
    assert [c.code for c in codes] == [CROP]
    assert codes[0].language == types.Language.PYTHON and codes[0].id
    assert [(o.outcome, o.output, o.id) for o in outputs] == [(types.Outcome.OUTCOME_OK, "(600, 400)\n", codes[0].id)]
    assert len(images) == 1 and Image.open(io.BytesIO(images[0].image_bytes)).size == (300, 200)
    assert texts == ["A cup of coffee. (the code printed (600, 400))"]
    parts = response.candidates[0].content.parts
    assert parts[0].thought_signature and parts[0].thought_signature in upstream.issued_signatures
    assert parts[-1].thought_signature in upstream.issued_signatures
    assert response.candidates[0].content.role == "model"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.model_version == MODEL and response.response_id
    # The upstream was driven by function calling with the client's key; the image was in the sandbox.
    first, second = upstream.requests
    assert first.api_key == "client-key"
    assert [d["name"] for t in first["tools"] for d in t.get("functionDeclarations", [])] == ["run_python"]
    assert not any("codeExecution" in t for t in first["tools"])
    assert second.function_responses()[-1]["response"]["outcome"] == "OUTCOME_OK"
    # Usage summed as hosted billing does: later prompts are tool-use prompt.
    usage = response.usage_metadata
    p1, p2 = first.response["usageMetadata"], second.response["usageMetadata"]
    assert usage.prompt_token_count == p1["promptTokenCount"]
    assert usage.tool_use_prompt_token_count == p2["promptTokenCount"]
    assert usage.candidates_token_count == p1["candidatesTokenCount"] + p2["candidatesTokenCount"]
    assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                       + usage.tool_use_prompt_token_count + (usage.thoughts_token_count or 0))


def test_thoughts_are_returned_only_when_asked(docs_env):
    with ScriptedGemini(crop_script() + crop_script()) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        asked = []
        for include in (True, False):
            config = types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution())],
                thinking_config=types.ThinkingConfig(include_thoughts=include))
            response = client.models.generate_content(
                model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Zoom in."],
                config=config)
            asked.append([p.text for p in response.candidates[0].content.parts if p.thought])
    assert asked == [["Zoom in first."], []]
    assert upstream.requests[0]["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


def test_stream_sends_the_code_before_it_runs_and_the_result_after(docs_env):
    slow = "import time\ntime.sleep(1.5)\nprint('slept')"
    script = [reply.call("run_python", {"code": slow}), "It slept."]
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        seen = []
        for chunk in client.models.generate_content_stream(
            model=MODEL,
            contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Wait, then answer."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]),
        ):
            for part in chunk.candidates[0].content.parts:
                seen.append((time.monotonic(), part, chunk))
    kinds = [("code" if p.executable_code else "result" if p.code_execution_result else "text") for _, p, _ in seen]
    assert kinds == ["code", "result", "text", "text"]
    (t_code, code, _), (t_result, result, _), (_, text, _), (_, end, last) = seen
    assert t_result - t_code >= 1.2  # the code part was out while the sandbox was still running it
    assert result.code_execution_result.output == "slept\n" and result.code_execution_result.id == code.executable_code.id
    assert text.text == "It slept."  # as upstream streamed it; then the end, carrying the answer's signature
    assert end.text == "" and end.thought_signature in upstream.issued_signatures
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert [c.candidates[0].finish_reason for _, _, c in seen[:-1]] == [None, None, None]
    assert upstream.requests[1].method == "streamGenerateContent"
    assert len({c.response_id for _, _, c in seen}) == 1
    assert seen[0][2].usage_metadata.prompt_token_count == upstream.requests[0].response["usageMetadata"]["promptTokenCount"]


def test_sse_wire_format_is_exactly_data_lines():
    body = {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": __import__("base64").b64encode(image_bytes()).decode()}},
        {"text": "Zoom in."}]}], "tools": [{"codeExecution": {}}]}
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        status, headers, payload = raw_request(gw.url, "POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                                               body, {"x-goog-api-key": "k"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    text = payload.decode()
    assert text.endswith("\n\n") and "\r" not in text
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    chunks = [json.loads(e[len("data: "):]) for e in events]
    assert [bool(c["candidates"][0].get("finishReason")) for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c["candidates"][0]["content"]["role"] == "model" and c["candidates"][0]["content"]["parts"] for c in chunks)
    assert len({c["responseId"] for c in chunks}) == 1 and {c["modelVersion"] for c in chunks} == {MODEL}
    totals = [c["usageMetadata"]["totalTokenCount"] for c in chunks]
    assert totals == sorted(totals) and totals[-1] > totals[0]  # cumulative
    assert "displayName" not in text
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert [next(iter(k for k in p if k != "thoughtSignature")) for p in parts] == [
        "executableCode", "codeExecutionResult", "inlineData", "text", "text"]


def test_stream_relays_text_as_upstream_streams_it(docs_env):
    words = reply.parts({"text": "Let me look. ", "thought": True}, {"text": "There is "}, {"text": "coffee "},
                        {"text": "in the cup.", "thoughtSignature": __import__("base64").b64encode(b"sig").decode()})
    with ScriptedGemini([words]) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        chunks = list(client.models.generate_content_stream(
            model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "What is in it?"],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)],
                                               thinking_config=types.ThinkingConfig(include_thoughts=True))))
    texts = [(p.text, bool(p.thought)) for c in chunks for p in c.candidates[0].content.parts]
    assert texts == [("Let me look. ", True), ("There is ", False), ("coffee ", False), ("in the cup.", False), ("", False)]
    assert chunks[-1].candidates[0].content.parts[0].thought_signature == b"sig"


def test_chat_sends_history_back_and_the_gateway_replays_it(docs_env):
    follow_up = "print(Image.open('image-1.png').getpixel((0, 0)))"
    script = crop_script() + [reply.call("run_python", {"code": "from PIL import Image\n" + follow_up}),
                              lambda r: reply.text(f"The corner pixel is {r.function_responses()[-1]['response']['output'].strip()}.")]
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        chat = client.chats.create(
            model=MODEL, config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
        first = chat.send_message([types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Zoom into the cup."])
        second = chat.send_message("What colour is the top-left pixel?")
    corner = Image.open(io.BytesIO(image_bytes())).convert("RGB").getpixel((0, 0))
    assert second.text == f"The corner pixel is {corner}."
    assert first.candidates[0].content.parts[0].executable_code.code == CROP
    # The second turn's upstream request carries turn one as function calls with their original
    # signatures (the scripted server checks them), paired responses and the image the run showed.
    third = upstream.requests[2]
    model_turn = next(c for c in third.contents if c["role"] == "model")
    call = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert call["functionCall"]["args"] == {"code": CROP}
    assert third.status == 200 and third.error is None
    response = third.function_responses()[0]
    assert response["id"] == call["functionCall"]["id"] and response["response"]["outcome"] == "OUTCOME_OK"
    assert len(response.get("parts", [])) == 1  # the crop, as a multimodal function response
    # A fresh sandbox per request, as hosted: the image of turn one is in it again.
    kinds = [next(k for k in ("executable_code", "code_execution_result", "text") if getattr(p, k) is not None)
             for p in second.candidates[0].content.parts]
    assert kinds == ["executable_code", "code_execution_result", "text"]


def test_streamed_chat_turns_split_over_chunks_come_back_as_one(docs_env):
    script = crop_script() + [reply.call("run_python", {"code": "print(2 + 2)"}), "Four."]
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        chat = client.chats.create(
            model=MODEL, config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
        first = [c for c in chat.send_message_stream(
            [types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Zoom into the cup."])]
        second = [c for c in chat.send_message_stream("And two plus two?")]
        history = chat.get_history()
    assert len(first) >= 3 and "".join(c.text or "" for c in second).endswith("Four.")
    assert [c.role for c in history].count("model") >= 3  # the SDK kept each chunk as a content
    third = upstream.requests[2]
    assert third.status == 200, third.error
    assert [c["role"] for c in third.contents] == ["user", "model", "user", "model", "user"]


def test_files_upload_and_file_references(docs_env, tmp_path):
    path = tmp_path / "coffee.png"
    path.write_bytes(image_bytes())
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        uploaded = client.files.upload(file=path)
        assert uploaded.state == types.FileState.ACTIVE and uploaded.size_bytes == path.stat().st_size
        assert uploaded.mime_type == "image/png" and uploaded.uri.startswith(gw.url)
        assert client.files.get(name=uploaded.name).uri == uploaded.uri
        assert uploaded.name in [f.name for f in client.files.list()]
        response = client.models.generate_content(
            model=MODEL, contents=[uploaded, "Zoom into the cup."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
        client.files.delete(name=uploaded.name)
        with pytest.raises(genai.errors.ClientError) as gone:
            client.files.get(name=uploaded.name)
    assert response.candidates[0].content.parts[1].code_execution_result.output == "(600, 400)\n"
    assert gone.value.code == 404


def test_requests_without_code_execution_pass_through_unchanged(docs_env):
    with ScriptedGemini(["Plain answer."]) as upstream, gateway(upstream, upstream_key="gateway-key") as gw:
        docs_env(gw)
        client = genai.Client()
        response = client.models.generate_content(model=MODEL, contents="Say something.",
                                                  config=types.GenerateContentConfig(temperature=0.5))
        count = client.models.count_tokens(model=MODEL, contents="Count these words please.")
        listed = [m.name for m in client.models.list()]
        got = client.models.get(model=MODEL)
    assert response.text == "Plain answer." and response.response_id == upstream.requests[0].response["responseId"]
    sent = upstream.requests[0]
    assert sent.api_key == "gateway-key" and "tools" not in sent.body
    assert sent["generationConfig"] == {"temperature": 0.5}
    assert count.total_tokens == tokens("Count these words please.")
    assert listed == [f"models/{MODEL}"] and got.name == f"models/{MODEL}"


def test_system_instruction_and_generation_config_reach_the_model(docs_env):
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client()
        client.models.generate_content(
            model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Zoom in."],
            config=types.GenerateContentConfig(
                tools=[types.Tool(code_execution=types.ToolCodeExecution)], system_instruction="Answer in French.",
                temperature=0.2, max_output_tokens=500,
                safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")]))
    sent = upstream.requests[0]
    assert sent["systemInstruction"]["parts"][0]["text"].endswith("Answer in French.")
    assert sent["generationConfig"]["temperature"] == 0.2 and sent["generationConfig"]["maxOutputTokens"] == 500
    assert sent["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_api_versions_and_a_path_prefix_in_the_base_url(version, tmp_path):
    path = tmp_path / "cup.png"
    path.write_bytes(image_bytes())
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(
            base_url=f"{gw.url}/gemini/proxy", api_version=version))
        uploaded = client.files.upload(file=path)
        response = client.models.generate_content(
            model=MODEL, contents=[uploaded, "Zoom in."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
    assert uploaded.uri.startswith(f"{gw.url}/gemini/proxy/")
    assert response.candidates[0].content.parts[1].code_execution_result.output == "(600, 400)\n"


def test_the_app_mounts_inside_another_starlette_app(tmp_path):
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from agentic_vision.servers.gateway import GatewayConfig, create_app

    path = tmp_path / "cup.png"
    path.write_bytes(image_bytes())
    with ScriptedGemini(crop_script()) as upstream:
        outer = Starlette(routes=[Mount("/tools/gemini", app=create_app(GatewayConfig(
            sandbox="local", upstream_url=upstream.url, upstream_key=None)))])
        server = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{port}/tools/gemini"))
            uploaded = client.files.upload(file=path)
            response = client.models.generate_content(
                model=MODEL, contents=[uploaded, "Zoom in."],
                config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    assert uploaded.uri.startswith(f"http://127.0.0.1:{port}/tools/gemini/")
    assert response.candidates[0].content.parts[1].code_execution_result.output == "(600, 400)\n"


def test_an_upstream_failure_mid_stream_is_raised_by_the_sdk(docs_env):
    # The gateway retries an upstream 5xx twice itself, as the loop would; then it gives up.
    script = [reply.call("run_python", {"code": "print('ran')"})] + [reply.error(503, "UNAVAILABLE", "Overloaded.")] * 3
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        docs_env(gw)
        client = genai.Client(http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1)))
        seen = []
        with pytest.raises(genai.errors.APIError) as failed:
            for chunk in client.models.generate_content_stream(
                    model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Go."],
                    config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)])):
                seen += chunk.candidates[0].content.parts
    assert [p.code_execution_result.output for p in seen if p.code_execution_result] == ["ran\n"]
    assert failed.value.code == 503 and "Overloaded" in failed.value.message


def test_readme_gateway_example(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "ToolCodeExecution" in b]
    (tmp_path / "photo.png").write_bytes(image_bytes())
    monkeypatch.chdir(tmp_path)
    with ScriptedGemini(crop_script("Three pedals.")) as upstream, gateway(upstream) as gw:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gw.url)
        monkeypatch.setenv("GEMINI_API_KEY", "readme-key")
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out == CROP + "\n(600, 400)\n\n" + "Three pedals. (the code printed (600, 400))\n"
    assert Image.open(tmp_path / "step.png").size == (300, 200)


def _snake(value):
    import re as _re
    if isinstance(value, list):
        return [_snake(v) for v in value]
    if isinstance(value, dict):
        return {_re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): _snake(v) for k, v in value.items()}
    return value


def _url_safe(value):
    """Every base64 field re-encoded URL-safe, as the Python SDK sends bytes back."""
    import base64 as b64
    if isinstance(value, list):
        return [_url_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: (b64.urlsafe_b64encode(b64.b64decode(v)).decode() if k in ("data", "thoughtSignature") else _url_safe(v))
                for k, v in value.items()}
    return value


def test_history_in_snake_case_url_safe_base64_and_split_turns_is_understood():
    import base64 as b64

    follow = [reply.call("run_python", {"code": "print('again')"}), "Again."]
    image = {"inlineData": {"mimeType": "image/png", "data": b64.b64encode(image_bytes()).decode()}}
    first = {"contents": [{"role": "user", "parts": [image, {"text": "Zoom in."}]}], "tools": [{"codeExecution": {}}]}
    with ScriptedGemini(crop_script() + follow) as upstream, gateway(upstream) as gw:
        status, _, payload = raw_request(gw.url, "POST", f"/v1beta/models/{MODEL}:generateContent", first, {"x-goog-api-key": "k"})
        assert status == 200
        parts = json.loads(payload)["candidates"][0]["content"]["parts"]
        assert "/" in parts[0]["thoughtSignature"] or "+" in parts[0]["thoughtSignature"]  # URL-safe differs
        # Sent back as a streamed turn would be: one model content per part, snake_case, URL-safe.
        history = [_snake(_url_safe({"role": "model", "parts": [p]})) for p in parts]
        second = {"contents": [_snake(_url_safe(first["contents"][0])), *history,
                               {"role": "user", "parts": [{"text": "Once more."}]}], "tools": [{"code_execution": {}}]}
        status, _, payload = raw_request(gw.url, "POST", f"/v1beta/models/{MODEL}:generateContent", second, {"x-goog-api-key": "k"})
    assert status == 200, payload
    replay = upstream.requests[2]
    assert replay.status == 200, replay.error  # the original signature came back intact
    call = next(p for c in replay.contents for p in c["parts"] if "functionCall" in p)
    assert b64.b64decode(call["thoughtSignature"].replace("-", "+").replace("_", "/") + "==") in upstream.issued_signatures
    assert len(replay.images()) == 2  # the photo and the crop the first run showed


def test_history_code_without_its_signature_gets_the_documented_placeholder():
    import base64 as b64

    image = {"inlineData": {"mimeType": "image/png", "data": b64.b64encode(image_bytes()).decode()}}
    body = {"contents": [
        {"role": "user", "parts": [image, {"text": "Zoom in."}]},
        {"role": "model", "parts": [{"executableCode": {"language": "PYTHON", "code": "print(1)"}},
                                    {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1\n"}},
                                    {"text": "One."}]},
        {"role": "user", "parts": [{"text": "And again?"}]}], "tools": [{"codeExecution": {}}]}
    with ScriptedGemini(["Again one."]) as upstream, gateway(upstream) as gw:
        status, _, payload = raw_request(gw.url, "POST", f"/v1beta/models/{MODEL}:generateContent", body,
                                         {"x-goog-api-key": "k"})
    assert status == 200, payload
    call = next(p for c in upstream.requests[0].contents for p in c["parts"] if "functionCall" in p)
    assert b64.b64decode(call["thoughtSignature"]) == b"skip_thought_signature_validator"
    assert call["functionCall"]["args"] == {"code": "print(1)"}
    response = upstream.requests[0].function_responses()[0]
    assert response["id"] == call["functionCall"]["id"] and response["response"]["output"] == "1\n"


def test_the_gateway_reads_its_upstream_and_key_from_the_environment(monkeypatch):
    from agentic_vision.servers.gateway import BackgroundGateway, GatewayConfig

    with ScriptedGemini(crop_script()) as upstream:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", upstream.url)
        monkeypatch.setenv("GEMINI_API_KEY", "the-gateways-own-key")
        with BackgroundGateway(GatewayConfig(sandbox="local")) as gw:
            client = genai.Client(api_key="a-client-key", http_options=types.HttpOptions(base_url=gw.url))
            response = client.models.generate_content(
                model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Zoom."],
                config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
    assert response.candidates[0].content.parts[1].code_execution_result.output == "(600, 400)\n"
    assert {r.api_key for r in upstream.requests} == {"the-gateways-own-key"}


def test_past_the_step_limit_the_forced_answer_appears_once(docs_env):
    script = [reply.call("run_python", {"code": "print(1)"}),
              reply.call("run_python", {"code": "print(2)"}, text="I would run more code.")]
    with ScriptedGemini(script) as upstream, gateway(upstream, max_steps=1) as gw:
        docs_env(gw)
        client = genai.Client()
        response = client.models.generate_content(
            model=MODEL, contents=[types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Count."],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)]))
    parts = response.candidates[0].content.parts
    assert [p.executable_code.code for p in parts if p.executable_code] == ["print(1)"]  # the second never ran
    assert [p.text for p in parts if p.text] == ["I would run more code."]
    assert upstream.requests[1]["toolConfig"]["functionCallingConfig"]["mode"] == "NONE"
