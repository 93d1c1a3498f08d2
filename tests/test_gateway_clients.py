"""Clients of one gateway are isolated from each other: a file uploaded with one key
is invisible to every other key (list, get, delete, fileData), as hosted files
belong to the key's project; a request without a key has no stored state; with
--client-keys each key of the file is its own client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from google import genai
from google.genai import types

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from gateway_helpers import MODEL, gateway, image_bytes, raw_request

pytestmark = pytest.mark.timeout(180)
CODE = types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution)])
SIZE = "from PIL import Image\nprint(Image.open('image-1.png').size)"


def client_for(gw, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gw.url))


def status_of(call) -> tuple[int, str]:
    with pytest.raises(genai.errors.APIError) as refused:
        call()
    return refused.value.code, refused.value.message


def uploaded_png(tmp_path, client: genai.Client) -> types.File:
    path = tmp_path / "coffee.png"
    path.write_bytes(image_bytes())
    return client.files.upload(file=path)


def test_a_file_belongs_to_the_key_that_uploaded_it(tmp_path):
    script = ["Hello.", reply.call("run_python", {"code": SIZE}),
              lambda r: reply.text("It is " + r.function_responses()[-1]["response"]["output"].strip())]
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        alice, bob = client_for(gw, "alice-gemini-key"), client_for(gw, "bob-gemini-key")
        mine = uploaded_png(tmp_path, alice)
        assert [f.name for f in alice.files.list()] == [mine.name]
        assert list(bob.files.list()) == []
        absent = "files/" + "0" * 12  # never uploaded: what any file of someone else must look like
        assert status_of(lambda: bob.files.get(name=mine.name))[0] == 404
        assert status_of(lambda: bob.files.get(name=absent))[0] == 404
        # Bob's code-execution request naming Alice's file gets what naming no file gets, never her bytes.
        ref = types.Part.from_uri(file_uri=mine.uri, mime_type="image/png")
        got = status_of(lambda: bob.models.generate_content(model=MODEL, contents=[ref, "Size?"], config=CODE))
        none = status_of(lambda: bob.models.generate_content(
            model=MODEL, contents=[types.Part.from_uri(file_uri=mine.uri.replace(mine.name, absent),
                                                       mime_type="image/png"), "Size?"], config=CODE))
        assert got[0] == none[0] == 400 and got[1] == none[1].replace(absent, mine.name)
        assert upstream.requests == []  # nothing ran
        # Nor is it inlined into Bob's request passed upstream: that goes as Bob sent it.
        assert bob.models.generate_content(model=MODEL, contents=[ref, "Hello?"]).text == "Hello."
        sent = upstream.requests[0]
        assert sent.api_key == "bob-gemini-key" and sent["contents"][0]["parts"][0] == {
            "fileData": {"fileUri": mine.uri, "mimeType": "image/png"}}
        assert status_of(lambda: bob.files.delete(name=mine.name))[0] == 404
        # Alice still has it and can use it.
        assert alice.files.get(name=mine.name).size_bytes == len(image_bytes())
        answer = alice.models.generate_content(model=MODEL, contents=[ref, "Size?"], config=CODE)
        assert answer.text == "It is (600, 400)" and upstream.requests[1].api_key == "alice-gemini-key"
        alice.files.delete(name=mine.name)
        assert list(alice.files.list()) == []


def test_a_request_without_a_key_has_no_stored_state():
    with ScriptedGemini([]) as upstream, gateway(upstream, upstream_key="gateway-key") as gw:
        start = {"x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
                 "x-goog-upload-header-content-length": "3"}
        for method, path, headers in [("POST", "/upload/v1beta/files", start), ("GET", "/v1beta/files", {}),
                                      ("GET", "/v1beta/files/abc", {}), ("DELETE", "/v1beta/files/abc", {})]:
            status, _, payload = raw_request(gw.url, method, path, {} if method == "POST" else None, headers)
            error = json.loads(payload)["error"]
            assert (status, error["status"]) == (401, "UNAUTHENTICATED"), path
            assert "x-goog-api-key" in error["message"]
        # It keeps serving those that send one.
        assert raw_request(gw.url, "GET", "/v1beta/files", headers={"x-goog-api-key": "k"})[0] == 200


def test_client_keys_make_each_key_its_own_client(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# team\nalice-0123456789abcdef Alice\n\nbob-0123456789abcdef0 Bob\n")
    with ScriptedGemini([]) as upstream, \
            gateway(upstream, auth_key="shared-gateway-key", client_keys=keys, upstream_key="upstream") as gw:
        alice, bob = client_for(gw, "alice-0123456789abcdef"), client_for(gw, "bob-0123456789abcdef0")
        shared = client_for(gw, "shared-gateway-key")
        mine = uploaded_png(tmp_path, alice)
        assert [f.name for f in alice.files.list()] == [mine.name]
        assert list(bob.files.list()) == [] and list(shared.files.list()) == []
        assert status_of(lambda: bob.files.get(name=mine.name))[0] == 404
        carol = client_for(gw, "carol-0123456789abcdef")  # not in the file
        assert status_of(lambda: carol.files.list())[0] == 403
        theirs = uploaded_png(tmp_path, shared)
        again = client_for(gw, "shared-gateway-key")  # every holder of --auth-key is one client
        assert [f.name for f in again.files.list()] == [theirs.name] and list(alice.files.list())[0].name == mine.name


@pytest.mark.parametrize("content, words", [("short Alice\n", "at least 16"),
                                             ("k-0123456789abcdef A\nk-0123456789abcdef B\n", "already"),
                                             ("# nothing\n", "no keys")])
def test_a_bad_client_keys_file_is_one_line(tmp_path, content, words):
    keys = tmp_path / "keys"
    keys.write_text(content)
    done = subprocess.run([sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "local", "--port", "0",
                           "--client-keys", str(keys)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr and "--client-keys" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
