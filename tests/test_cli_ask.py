"""`agentic-vision ask`: the command as a user runs it, against the scripted server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

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
    assert "OUTCOME_OK" in result.stderr and "images: 100x80 from coins.png [0, 0, 100, 80]" in result.stderr
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
    assert step["images"] == [{"mime_type": "image/png", "width": 100, "height": 80, "source": {
        "input": "coins.png", "box": [0, 0, 100, 80], "angle": 0.0, "how": "tracked", "score": 1.0}}]
    assert step["error"] is None
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
    assert result.stderr == (f"agentic-vision: --trace {blocker / 't.html'}: {blocker} is a file, not a folder; "
                             "choose another path\n")
    assert server.requests == []  # checked before the model was asked


# -- inputs and first-run failures, as a user meets them --------------------------------------


def test_question_from_stdin_and_several_images_and_a_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(sample("coins.png").read_bytes())
    (folder / "b.jpg").write_bytes(sample("rocket.jpg").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    code = "import os\nprint(sorted(f for f in os.listdir('.') if not f.startswith('.')))"
    script = [reply.call("run_python", {"code": code}),
              lambda request: reply.text(request.function_responses()[-1]["response"]["output"])]
    with ScriptedGemini(script) as server:
        result = subprocess.run(
            [sys.executable, "-m", "agentic_vision", "ask", str(folder), str(sample("camera.png")), "-",
             "--sandbox", "local", "--quiet"],
            input="What differs between these?\n", capture_output=True, text=True, timeout=300,
            env={**os.environ, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
        first = server.requests[0]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['a.png', 'b.jpg', 'camera.png']"
    assert "What differs between these?" in first.first_user_text() and len(first.images()) == 3


@pytest.mark.parametrize("args, message", [
    (["--model", "gpt-4o"], "write openai:gpt-4o"),
    (["--model", "o3-mini"], "write openai:o3-mini"),
    (["--model", "claude-sonnet-4"], "Anthropic model"),
    (["--model", "qwen2.5vl"], "write ollama:qwen2.5vl"),
    (["--model", "ollama:"], "no model name after 'ollama:'"),
    (["--model", "openai:"], "no model name after 'openai:'"),
    (["--thinking", "bogus"], "Invalid value for '--thinking'"),
    (["--thinking", "2048"], "Invalid value for '--thinking'"),
    (["--thinking", "minimal", "--model", "gemini-3-pro-preview"], "not a level gemini-3-pro-preview takes"),
    (["--page", "x"], "is not a page list"),
])
def test_bad_model_settings_are_one_line_before_any_sandbox(args, message):
    started = time.monotonic()
    result = ask(str(sample("coins.png")), "How many?", *args, extra_env={"AGENTIC_VISION_HOME": "/nonexistent"})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "sandbox: " not in result.stderr
    assert time.monotonic() - started < 30


def test_an_unreachable_api_is_one_line_within_seconds_naming_the_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = ask(str(sample("coins.png")), "How many?", extra_env={"GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{port}"})
    assert result.returncode == 1
    assert result.stderr == (f"agentic-vision: cannot reach the model API at http://127.0.0.1:{port}: "
                             "Connection refused (check GOOGLE_GEMINI_BASE_URL)\n")
    assert time.monotonic() - started < 20


def test_no_sandbox_environment_is_one_line_after_the_key_is_checked(tmp_path):
    with ScriptedGemini([]) as server:
        result = ask(str(sample("coins.png")), "How many?", "--sandbox", "local", server=server,
                     extra_env={"AGENTIC_VISION_HOME": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr == ("agentic-vision: the local sandbox's library environment is not set up: run "
                             "'agentic-vision sandbox setup' (once, a few minutes) or use --sandbox docker\n")
    assert server.requests == [] and [r.method for r in server.lookups] == ["get"]  # the model was looked up


def test_ctrl_c_writes_the_partial_trace_marked_interrupted(tmp_path):
    trace = tmp_path / "trace.html"
    script = [reply.call("run_python", {"code": "import time\nprint('started', flush=True)\ntime.sleep(60)"})]
    with ScriptedGemini(script) as server:
        env = {**os.environ, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url}
        proc = subprocess.Popen([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")), "q",
                                 "--sandbox", "local", "--trace", str(trace)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                # A test run started in the background inherits SIGINT ignored.
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        seen = ""
        while "── step 1" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"still running 120 s after Ctrl-C; stderr so far: {seen + err}")
    assert proc.returncode == 130, seen + err
    assert err.strip().endswith(f"agentic-vision: interrupted; the trace so far is in {trace}")
    html = trace.read_text()
    assert "No answer (interrupted)" in html and '<span class="badge bad">INTERRUPTED</span>' in html
    assert "Step 1" in html and "interrupted (Ctrl-C) while this ran" in html  # the step that was running
    step = html[html.index("Step 1"):]
    assert "started\n[interrupted (Ctrl-C) while this ran]" in step  # what it had printed is kept
    seconds = float(step.split('<span class="meta">')[1].split(" s</span>")[0])
    assert seconds >= 1.5  # it ran about 2 s before Ctrl-C, not "0.00 s"


def test_out_saves_every_image_of_every_step_and_json_gives_their_paths(tmp_path):
    two = "from PIL import Image\nim = Image.open('coins.png')\nim.crop((0, 0, 50, 40)).show()\nim.crop((0, 0, 30, 20)).show()"
    script = [reply.call("run_python", {"code": CROP}), reply.call("run_python", {"code": two}), reply.text("24")]
    out = tmp_path / "made"
    with ScriptedGemini(script) as server:
        result = ask(str(sample("coins.png")), "How many?", "--out", str(out), "--json", "--sandbox", "local",
                     server=server)
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout)["steps"]
    paths = [[im["path"] for im in step["images"]] for step in steps]
    assert paths == [[str(out / "step-1-image-1.png")], [str(out / "step-2-image-1.png"), str(out / "step-2-image-2.png")]]
    from conftest import png_size
    sizes = [png_size(open(p, "rb").read()) for step in paths for p in step]
    assert sizes == [(100, 80), (50, 40), (30, 20)]


def test_an_unusable_out_is_one_line_before_the_model_is_asked(tmp_path):
    taken = tmp_path / "file"
    taken.write_text("x")
    with ScriptedGemini([]) as server:
        result = ask(str(sample("coins.png")), "How many?", "--out", str(taken / "sub"), "--sandbox", "local",
                     server=server)
        assert server.requests == []  # no model turn was spent
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "check the path" in result.stderr


def test_json_steps_carry_the_structured_error():
    script = [reply.call("run_python", {"code": "x = {}\nx['missing']"}), reply.text("no")]
    with ScriptedGemini(script) as server:
        result = ask(str(sample("coins.png")), "Go", "--json", "--sandbox", "local", server=server)
    assert result.returncode == 0, result.stderr
    [step] = json.loads(result.stdout)["steps"]
    assert step["outcome"] == "OUTCOME_FAILED" and step["error"] == {"name": "KeyError", "value": "'missing'"}
