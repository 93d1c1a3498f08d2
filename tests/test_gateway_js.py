"""The gateway with the @google/genai JavaScript SDK from npm (tests/js, installed by
``npm ci`` in scripts/test.sh), running the documentation's code-execution examples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import require
from gateway_helpers import CROP, gateway, image_bytes

JS = Path(__file__).parent / "js"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def sdk_installed():
    require(shutil.which("node"), "Node.js (node on PATH; scripts/test.sh installs it with apt)")
    installed = (JS / "node_modules" / "@google" / "genai").is_dir()
    if not installed and os.environ.get("AGENTIC_VISION_TEST_JS") == "1":
        pytest.fail("the JavaScript SDK is not installed: run npm ci in tests/js (scripts/test.sh does)", pytrace=False)
    require(installed, "the JavaScript SDK: run npm ci in tests/js (scripts/test.sh does)")


def run_js(gw, scenario: str, image: Path, *, option: bool = False) -> object:
    env = {**os.environ, "GEMINI_API_KEY": "js-key"}
    env.pop("GOOGLE_API_KEY", None)
    if option:
        env["BASE_URL_OPTION"] = gw.url
        env.pop("GOOGLE_GEMINI_BASE_URL", None)
    else:
        env["GOOGLE_GEMINI_BASE_URL"] = gw.url
    done = subprocess.run(["node", str(JS / "docs_examples.mjs"), scenario, str(image)], capture_output=True,
                          text=True, env=env, timeout=150)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def crop_script(answer: str = "A cup of coffee."):
    return [reply.call("run_python", {"code": CROP}),
            lambda r: reply.text(f"{answer} ({r.function_responses()[-1]['response']['output'].strip()})")]


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "coffee.png"
    path.write_bytes(image_bytes())
    return path


@pytest.mark.parametrize("option", [False, True], ids=["env", "httpOptions"])
def test_js_generate_content(image, option):
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        (response,) = run_js(gw, "generate", image, option=option)
    kinds = [p["kind"] for p in response["parts"]]
    assert kinds == ["code", "result", "image", "text"]
    code, result, picture, text = response["parts"]
    assert code["code"] == CROP and code["language"] == "PYTHON" and code["signed"]
    assert (result["outcome"], result["output"], result["id"]) == ("OUTCOME_OK", "(600, 400)\n", code["id"])
    assert picture["mimeType"] == "image/png" and picture["bytes"] > 1000 and picture["keys"] == ["mimeType", "data"]
    assert text["text"] == "A cup of coffee. ((600, 400))" and text["signed"]
    assert response["role"] == "model" and response["finishReason"] == "STOP"
    assert upstream.requests[0].api_key == "js-key"
    assert response["usage"]["totalTokenCount"] == sum(response["usage"].get(k, 0) for k in (
        "promptTokenCount", "candidatesTokenCount", "toolUsePromptTokenCount", "thoughtsTokenCount"))


def test_js_stream(image):
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        chunks = run_js(gw, "stream", image)
    kinds = [p["kind"] for c in chunks for p in c["parts"]]
    assert kinds == ["code", "result", "image", "text", "text"]  # the last: empty, signed, with finishReason
    assert chunks[-1]["parts"] == [{"kind": "text", "text": "", "signed": True}]
    assert "".join(c["text"] or "" for c in chunks) == "A cup of coffee. ((600, 400))"
    assert [c["finishReason"] for c in chunks] == [None] * (len(chunks) - 1) + ["STOP"]
    assert len({c["responseId"] for c in chunks}) == 1 and {c["role"] for c in chunks} == {"model"}


@pytest.mark.parametrize("scenario", ["chat", "streamchat"])
def test_js_chats_send_the_history_back(image, scenario):
    script = crop_script() + [reply.call("run_python", {"code": "from PIL import Image\n"
                                                                "print(Image.open('image-1.png').getpixel((0, 0)))"}),
                              lambda r: reply.text(f"It is {r.function_responses()[-1]['response']['output'].strip()}.")]
    with ScriptedGemini(script) as upstream, gateway(upstream) as gw:
        result = run_js(gw, scenario, image)
    texts = "".join(p.get("text", "") for turn in result["turns"] for p in turn["parts"] if p["kind"] == "text")
    assert texts.endswith("It is (21, 13, 8).")
    replay = upstream.requests[2]
    assert replay.status == 200, replay.error  # signatures and call/response pairs were accepted
    assert [c["role"] for c in replay.contents] == ["user", "model", "user", "model", "user"]


def test_js_files_upload(image):
    with ScriptedGemini(crop_script()) as upstream, gateway(upstream) as gw:
        result = run_js(gw, "upload", image)
    assert result["file"]["state"] == "ACTIVE" and int(result["file"]["sizeBytes"]) == image.stat().st_size
    assert result["fetched"] == result["file"]["name"]
    assert [p["kind"] for p in result["response"]["parts"]] == ["code", "result", "image", "text"]
    assert result["response"]["parts"][1]["output"] == "(600, 400)\n"
