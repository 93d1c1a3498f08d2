"""The README's Python examples run as written (against the scripted server)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def last_user_text(request) -> str:
    for content in reversed(request.contents):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return texts[-1]
    return ""


def route(request):
    """Answers by the latest question; a code step first when none has run for it yet."""
    question = last_user_text(request)
    last = request.contents[-1]
    answered_call = any("functionResponse" in p for p in last.get("parts", []))
    if answered_call:
        return reply.text(f"Answer to: {question}")
    if "largest coin" in question:
        return reply.call("run_python", {"code": "from PIL import Image\nImage.open('coins.png').crop((0, 0, 80, 80)).show()"})
    return reply.text(f"Answer to: {question}")


def test_agent_example(tmp_path, monkeypatch, capsys):
    [block] = [b for b in python_blocks() if "from agentic_vision import Agent" in b]
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    monkeypatch.chdir(tmp_path)
    with ScriptedGemini(router=route) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Answer to: How many coins are there? answered" in out
    assert any(r.function_responses() for r in server.requests)  # the chat ran code


def test_open_session_example(tmp_path, monkeypatch):
    [block] = [b for b in python_blocks() if "from agentic_vision import open_session" in b]
    shutil.copy(sample("rocket.jpg"), tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.outcome == "OUTCOME_OK"
    assert [(im.width, im.height) for im in result.images] == [(640, 427)]


def test_gateway_example_runs_with_the_environment_the_readme_sets(tmp_path):
    """The gateway section's shell lines, as written (the address made the test's own), are
    all the documentation's code needs: the SDK refuses to start without a key."""
    import os
    import subprocess
    import sys

    from gateway_helpers import CROP, gateway

    text = README.read_text()
    section = text[text.index("## Existing Gemini code, unchanged: the gateway"):]
    [shell] = [b for b in re.findall(r"```sh\n(.*?)```", section, flags=re.S) if "export GOOGLE_GEMINI_BASE_URL" in b]
    exports = dict(re.findall(r"^export (\w+)=(\S+)", shell, flags=re.M))
    [block] = [b for b in python_blocks() if "client.models.generate_content" in b]
    shutil.copy(sample("coffee.png"), tmp_path / "photo.png")
    script = [reply.call("run_python", {"code": CROP}), reply.text("There are 3 pedals.")]
    with ScriptedGemini(script) as upstream, gateway(upstream, upstream_key="the-gateways-own-key") as running:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_"))}
        env.update(exports, GOOGLE_GEMINI_BASE_URL=running.url)
        result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=300)
    assert result.returncode == 0, result.stderr
    assert "There are 3 pedals." in result.stdout and (tmp_path / "step.png").is_file()
