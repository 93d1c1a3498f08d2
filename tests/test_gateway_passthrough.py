"""What the gateway passes on to the upstream Gemini API (requests without codeExecution, embeddings,
countTokens), what it keeps back (the client's ?key=, files uploaded here), and how it fails."""

from __future__ import annotations

import base64
import http.client
import json

import pytest
from google import genai
from google.genai import types

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from agentic_vision.testing.http_server import tokens
from agentic_vision.testing.openai_server import ScriptedOpenAI
from gateway_helpers import MODEL, gateway, image_bytes, raw_request
from tcp_forwarder import closed_port

pytestmark = pytest.mark.timeout(120)
CODE_EXECUTION = [types.Tool(code_execution=types.ToolCodeExecution())]


def client_for(gw, key: str = "client-key") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))


def test_embeddings_pass_through():
    with ScriptedGemini([]) as upstream, gateway(upstream) as gw:
        client = client_for(gw)
        batch = client.models.embed_content(model="gemini-embedding-001", contents=["Hello there", "A cup of coffee"])
        status, _, payload = raw_request(gw.url, "POST", "/v1beta/models/gemini-embedding-001:embedContent",
                                         {"content": {"parts": [{"text": "One more"}]}}, {"x-goog-api-key": "client-key"})
    assert [e.values for e in batch.embeddings] == [[float(tokens("Hello there")), 11.0],
                                                    [float(tokens("A cup of coffee")), 15.0]]
    assert status == 200 and json.loads(payload) == {"embedding": {"values": [float(tokens("One more")), 8.0]}}
    assert [r.method for r in upstream.requests] == ["batchEmbedContents", "embedContent"]
    assert {r.api_key for r in upstream.requests} == {"client-key"}


@pytest.mark.parametrize("upstream_key", [None, "gateway-key"])
def test_a_key_in_the_url_is_not_passed_on_in_the_url(upstream_key):
    """The client's ?key= never reaches the upstream's URL (logs, proxies): the key goes as a header."""
    with ScriptedGemini(["Plain answer."]) as upstream, gateway(upstream, upstream_key=upstream_key) as gw:
        for method, path, body in [
            ("POST", f"/v1beta/models/{MODEL}:generateContent?key=client-key&alt=json",
             {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
            ("POST", f"/v1beta/models/{MODEL}:countTokens?key=client-key", {"contents": [{"parts": [{"text": "Hi"}]}]}),
            ("POST", "/v1beta/models/gemini-embedding-001:embedContent?key=client-key",
             {"content": {"parts": [{"text": "Hi"}]}}),
            ("GET", "/v1beta/models?key=client-key&pageSize=5", None),
            ("GET", f"/v1beta/models/{MODEL}?key=client-key", None),
        ]:
            status, _, payload = raw_request(gw.url, method, path, body)
            assert status == 200, (path, payload)
    seen = upstream.requests + upstream.lookups
    assert len(seen) == 5
    assert [r.query.get("key") for r in seen] == [None] * 5
    assert {r.api_key for r in seen} == {upstream_key or "client-key"}
    assert upstream.requests[0].query == {"alt": ["json"]}  # the other parameters stay
    assert [r.query for r in upstream.lookups] == [{"pageSize": ["5"]}, {}]


def test_files_uploaded_here_go_upstream_inline_on_pass_through_and_count_tokens(tmp_path):
    path = tmp_path / "cup.png"
    path.write_bytes(image_bytes())
    with ScriptedGemini(["A cup."]) as upstream, gateway(upstream) as gw:
        client = client_for(gw)
        uploaded = client.files.upload(file=path)
        response = client.models.generate_content(model=MODEL, contents=[uploaded, "What is it?"])
        count = client.models.count_tokens(model=MODEL, contents=[uploaded, "What is it?"])
    assert response.text == "A cup."
    generate, counted = upstream.requests
    assert counted.method == "countTokens" and count.total_tokens > tokens("What is it?")
    for sent in (generate, counted):
        contents = sent.body.get("contents") or sent.body["generateContentRequest"]["contents"]
        blob = contents[0]["parts"][0]
        assert "fileData" not in blob, blob
        assert blob["inlineData"]["mimeType"] == "image/png"
        assert base64.b64decode(blob["inlineData"]["data"]) == image_bytes()


def test_streams_without_code_execution_pass_through():
    words = reply.parts({"text": "There is "}, {"text": "coffee "}, {"text": "in the cup."})
    with ScriptedGemini([words]) as upstream, gateway(upstream) as gw:
        client = client_for(gw)
        chunks = list(client.models.generate_content_stream(model=MODEL, contents="What is in the cup?"))
    assert [c.text for c in chunks] == ["There is ", "coffee ", "in the cup."]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    [sent] = upstream.requests
    assert sent.method == "streamGenerateContent" and sent.query == {"alt": ["sse"]} and "tools" not in sent.body


def test_an_unreachable_upstream_is_a_502_and_the_gateway_keeps_serving():
    with gateway(upstream_url=f"http://127.0.0.1:{closed_port()}") as gw:
        client = client_for(gw)
        with pytest.raises(genai.errors.ServerError) as generate:
            client.models.generate_content(model=MODEL, contents="Hello")
        with pytest.raises(genai.errors.ServerError) as count:
            client.models.count_tokens(model=MODEL, contents="Hello")
        status, _, _ = raw_request(gw.url, "GET", "/v1beta/files", headers={"x-goog-api-key": "k"})
    for error in (generate.value, count.value):
        assert error.code == 502 and "cannot reach the upstream Gemini API at http://127.0.0.1:" in error.message
    assert status == 200


def test_count_tokens_on_a_routed_model_is_a_clear_400():
    with ScriptedOpenAI([]) as backend, ScriptedGemini([]) as upstream, \
            gateway(upstream, routes=[f"vlm=openai:m@{backend.url}"]) as gw:
        client = client_for(gw)
        with pytest.raises(genai.errors.ClientError) as refused:
            client.models.count_tokens(model="vlm", contents="How many tokens?")
    assert refused.value.code == 400 and "countTokens is not available for 'vlm'" in refused.value.message
    assert backend.requests == [] and upstream.requests == []


def test_a_chunked_body_over_the_limit_is_a_413():
    with ScriptedGemini(["Fine."]) as upstream, gateway(upstream, max_body_bytes=2**20) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
        conn.putrequest("POST", f"/v1beta/models/{MODEL}:generateContent")
        conn.putheader("x-goog-api-key", "k")
        conn.putheader("content-type", "application/json")
        conn.putheader("transfer-encoding", "chunked")  # no Content-Length: the size shows only as it comes
        conn.endheaders()
        chunk = b"x" * 65536
        try:
            for _ in range(64):  # 4 MiB, past the 1 MiB limit
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except OSError:  # the gateway may answer and close before it all went
            pass
        response = conn.getresponse()
        error = json.loads(response.read())["error"]
        conn.close()
        status, _, _ = raw_request(gw.url, "POST", f"/v1beta/models/{MODEL}:generateContent",
                                   {"contents": [{"parts": [{"text": "Hi"}]}]}, {"x-goog-api-key": "k"})
    assert response.status == 413 and error["status"] == "INVALID_ARGUMENT" and "exceeds the limit" in error["message"]
    assert status == 200 and len(upstream.requests) == 1


# -- routed models ----------------------------------------------------------------------------


def routed_request(**config) -> tuple[list, types.GenerateContentConfig]:
    contents = [types.Part.from_bytes(data=image_bytes(), mime_type="image/png"), "Zoom in."]
    return contents, types.GenerateContentConfig(**{"tools": CODE_EXECUTION, **config})


def test_what_a_routed_model_cannot_honour_is_refused_before_it_is_asked():
    with ScriptedOpenAI([]) as backend, gateway(routes=[f"vlm=openai:m@{backend.url}"]) as gw:
        client = client_for(gw)
        contents, search = routed_request(tools=CODE_EXECUTION + [types.Tool(google_search=types.GoogleSearch())])
        with pytest.raises(genai.errors.ClientError) as tool:
            client.models.generate_content(model="vlm", contents=contents, config=search)
        contents, safety = routed_request(safety_settings=[
            types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")])
        with pytest.raises(genai.errors.ClientError) as safe:
            client.models.generate_content(model="vlm", contents=contents, config=safety)
    assert tool.value.code == 400 and "has no googleSearch tool" in tool.value.message
    assert safe.value.code == 400 and "safetySettings cannot be honoured by openai:m" in safe.value.message
    assert backend.requests == []


def test_a_routed_models_sampling_settings_reach_the_openai_server():
    with ScriptedOpenAI(["Done."]) as backend, gateway(routes=[f"vlm=openai:m@{backend.url}"]) as gw:
        client = client_for(gw)
        contents, config = routed_request(temperature=0.3, max_output_tokens=300, top_p=0.9, seed=7,
                                          stop_sequences=["STOP"], presence_penalty=0.5, frequency_penalty=0.25)
        assert client.models.generate_content(model="vlm", contents=contents, config=config).text == "Done."
    body = backend.requests[0].body
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["seed"], body["stop"]) == (0.3, 300, 0.9, 7, ["STOP"])
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, 0.25)


@pytest.mark.parametrize("budget, sent", [(1, "low"), (1024, "low"), (1025, "medium"), (8192, "medium"),
                                          (8193, "high"), (10**6, "high")])
def test_a_routed_models_thinking_budget_boundaries(budget, sent):
    with ScriptedOpenAI(["Done."]) as backend, gateway(routes=[f"vlm=openai:gpt-5.1@{backend.url}"]) as gw:
        client = client_for(gw)
        contents, config = routed_request(thinking_config=types.ThinkingConfig(thinking_budget=budget))
        client.models.generate_content(model="vlm", contents=contents, config=config)
    assert backend.requests[0].body["reasoning_effort"] == sent
