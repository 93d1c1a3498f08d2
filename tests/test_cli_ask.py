"""`agentic-vision ask`: the command as a user runs it, against the scripted server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

CROP = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 100, 80)).show()\nprint('cropped')"


def ask(*args, server=None, key="test-key", extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    if key:
        env["GEMINI_API_KEY"] = key
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.url  # the SDK's own variable
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "agentic_vision", "ask", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_answer_on_stdout_progress_on_stderr():
    script = [reply.call("run_python", {"code": CROP}, thought="Let me zoom in."), reply.text("24 coins.")]
    with ScriptedGemini(script) as server:
        result = ask(str(sample("coins.png")), "How many coins?", "--sandbox", "local", server=server)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "24 coins.\n"
    assert "sandbox: local" in result.stderr
    assert "thinking: Let me zoom in." in result.stderr
    assert "OUTCOME_OK" in result.stderr and "images: 100x80" in result.stderr
    assert "Image.open('coins.png')" in result.stderr


def test_json_output_has_the_contract_shape(tmp_path):
    script = [reply.call("run_python", {"code": CROP}), reply.text("24")]
    with ScriptedGemini(script) as server:
        result = ask(str(sample("coins.png")), "How many?", "--json", "--sandbox", "local", server=server)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --json is quiet
    data = json.loads(result.stdout)
    assert data["answer"] == "24" and data["stop_reason"] == "answered"
    [step] = data["steps"]
    assert step["code"] == CROP and step["outcome"] == "OUTCOME_OK" and step["output"] == "cropped\n"
    assert step["images"] == [{"mime_type": "image/png", "width": 100, "height": 80}]
    assert set(data["usage"]) >= {"prompt_tokens", "output_tokens", "thoughts_tokens"}
    assert data["usage"]["prompt_tokens"] > 0


def test_trace_is_written(tmp_path):
    trace = tmp_path / "trace.html"
    script = [reply.call("run_python", {"code": CROP}), reply.text("24")]
    with ScriptedGemini(script) as server:
        result = ask(str(sample("coins.png")), "How many?", "--trace", str(trace), "--sandbox", "local", server=server)
    assert result.returncode == 0, result.stderr
    html = trace.read_text()
    assert "How many?" in html and "cropped" in html and html.count("data:image/") >= 2


def test_no_api_key_is_one_line_and_exit_2():
    result = ask(str(sample("coins.png")), "How many?", key=None)
    assert result.returncode == 2
    assert result.stderr == "agentic-vision: no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY, or Vertex AI settings)\n"


@pytest.mark.parametrize("bad, message", [("missing.jpg", "file not found"), ("notes.txt", "not a readable image")])
def test_bad_image_is_one_line_and_exit_2(tmp_path, bad, message):
    path = tmp_path / bad
    if bad.endswith(".txt"):
        path.write_text("hello")
    with ScriptedGemini([]) as server:
        result = ask(str(path), "What is it?", server=server)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_refused_key_exits_1_with_one_line():
    with ScriptedGemini([reply.error(403, "PERMISSION_DENIED", "API key not valid.")]) as server:
        result = ask(str(sample("coins.png")), "How many?", "--sandbox", "local", server=server)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("agentic-vision: the API key was refused (403")


def test_stopped_without_an_answer_exits_1():
    script = [reply.call("run_python", {"code": "print(1)"}), reply.parts({"functionCall": {"name": "run_python", "args": {"code": "print(2)"}}})]
    with ScriptedGemini(script) as server:
        result = ask(str(sample("coins.png")), "Go", "--max-steps", "1", "--sandbox", "local", "--quiet", server=server)
    assert result.returncode == 1
    assert "stopped without an answer (max_steps)" in result.stderr


@pytest.mark.live
@pytest.mark.skipif(not (os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")),
                    reason="needs a real Gemini API key in GEMINI_API_KEY; no model API is reachable here")
def test_live_gemini_counts_coins():
    result = ask(str(sample("coins.png")), "How many coins are in this image? Answer with a number.",
                 key=os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY"))
    assert result.returncode == 0, result.stderr
    assert any(ch.isdigit() for ch in result.stdout)


def test_fully_local_with_an_ollama_model():
    from agentic_vision.testing.openai_server import ScriptedOpenAI
    from agentic_vision.testing.openai_server import reply as oreply

    script = [oreply.call("run_python", {"code": CROP}), oreply.text("24 coins.")]
    with ScriptedOpenAI(script) as server:
        result = ask(str(sample("coins.png")), "How many coins?", "--model", "ollama:qwen2.5vl", "--sandbox", "local",
                     key=None, extra_env={"OLLAMA_HOST": server.address})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "24 coins.\n"
    assert server.requests[0].body["model"] == "qwen2.5vl"
    # The crop went back as an image in a user message after the tool message.
    assert any(im.where.startswith("messages") for im in server.images_in_request(-1))


def test_a_trace_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with ScriptedGemini([reply.text("24")]) as server:
        result = ask(str(sample("coins.png")), "How many?", "--trace", str(blocker / "t.html"), "--sandbox", "local",
                     "--quiet", server=server)
    assert result.returncode == 2
    assert result.stderr == f"agentic-vision: {blocker}: File exists; check the path and its permissions\n"
