"""``thinking=`` / ``--thinking`` for openai:/ollama: models: the Chat Completions
``reasoning_effort`` the real openai SDK sends to the scripted server, per level and
kind of server, and the one line a model that takes no reasoning setting gets."""

from __future__ import annotations

import os
import subprocess
import sys

import openai
import pytest
from click.testing import CliRunner

from agentic_vision.cli.bench import bench_command
from agentic_vision.errors import InputError, ModelError
from agentic_vision.loop.agent import Agent
from agentic_vision.models import get_model
from agentic_vision.models.base import ToolSpec
from agentic_vision.models.openai_compat import OpenAIModel
from agentic_vision.testing.openai_server import ScriptedOpenAI, reply
from conftest import sample

TOOL = ToolSpec("run_python", "Runs Python.")
# What reaches the server for each level: (reasoning_effort, chat_template_kwargs); None is "not sent".
SENT = {
    "server": {"default": (None, None), "off": ("none", {"enable_thinking": False}), "minimal": ("minimal", None),
               "low": ("low", None), "medium": ("medium", None), "high": ("high", None)},
    "ollama": {"default": (None, None), "off": ("none", None), "low": ("low", None), "medium": ("medium", None),
               "high": ("high", None)},
    "openai": {"default": (None, None), "off": ("none", None), "minimal": ("minimal", None), "low": ("low", None),
               "medium": ("medium", None), "high": ("high", None)},
}


def one_turn(model: OpenAIModel) -> None:
    conversation = model.start("You look at images.", TOOL)
    conversation.add_user("How many coins?", [])
    conversation.generate()


def make(kind: str, server: ScriptedOpenAI, level: str, monkeypatch) -> OpenAIModel:
    if kind == "ollama":
        monkeypatch.setenv("OLLAMA_HOST", server.address)
        return get_model("ollama:qwen3-vl", thinking=level)
    if kind == "openai":
        # api.openai.com decides the kind; the real SDK client carries the requests to the scripted server.
        client = openai.OpenAI(api_key="sk-test", base_url=server.url, max_retries=0)
        return get_model("openai:gpt-5.1", thinking=level, base_url="https://api.openai.com/v1", client=client)
    return get_model("openai:Qwen/Qwen3-VL-8B", thinking=level, base_url=server.url)


@pytest.mark.parametrize("kind, level", [(kind, level) for kind, levels in SENT.items() for level in levels])
def test_each_level_sends_its_reasoning_effort(kind, level, monkeypatch):
    with ScriptedOpenAI(["24 coins."]) as server:
        model = make(kind, server, level, monkeypatch)
        assert model.kind == kind
        one_turn(model)
    [request] = server.requests
    assert request.status == 200, request.error
    effort, template = SENT[kind][level]
    assert request.body.get("reasoning_effort", None) == effort
    assert ("reasoning_effort" in request.body) == (level != "default")  # default: the server's own, nothing sent
    assert request.body.get("chat_template_kwargs") == template


def test_the_users_extra_body_wins_over_the_thinking_switch():
    with ScriptedOpenAI(["ok"]) as server:
        model = get_model("openai:qwen3", thinking="off", base_url=server.url,
                          extra_body={"chat_template_kwargs": {"enable_thinking": True, "custom": 1}, "top_k": 20})
        one_turn(model)
    body = server.requests[0].body
    assert body["reasoning_effort"] == "none"
    assert body["chat_template_kwargs"] == {"enable_thinking": True, "custom": 1} and body["top_k"] == 20


@pytest.mark.parametrize("name, level, accepted", [
    ("openai:gpt-5", "bogus", "default, off, minimal, low, medium, high"),
    ("openai:gpt-5", "2048", "default, off, minimal, low, medium, high"),
    ("ollama:qwen3", "minimal", "default, off, low, medium, high"),  # Ollama refuses "minimal"
])
def test_a_level_the_model_does_not_take_is_one_line(name, level, accepted):
    with pytest.raises(InputError) as refused:
        get_model(name, thinking=level, base_url="http://127.0.0.1:9/v1")
    assert str(refused.value) == f"--thinking {level!r} is not a level {name} takes: use one of {accepted}"


def test_through_the_agent_the_python_api():
    with ScriptedOpenAI([reply.call("run_python", {"code": "print(6 * 4)"}), "24"]) as server:
        agent = Agent(model="openai:qwen3-vl", model_options={"base_url": server.url, "thinking": "high"},
                      sandbox="local")
        result = agent.run("How many coins?", images=[sample("coins.png")])
    assert result.answer == "24", result.error
    assert [r.body["reasoning_effort"] for r in server.requests] == ["high", "high"]


@pytest.mark.parametrize("server_options, said", [
    # OpenAI, for a model that takes no reasoning setting (gpt-4o): param "reasoning_effort".
    ({"reasoning_efforts": None}, "Unsupported parameter: 'reasoning_effort' is not supported with this model."),
    # Ollama's wording for a model without thinking (no param in the body).
    ({"reasoning_efforts": None, "reasoning_error": '"{model}" does not support thinking'},
     '"gpt-4o" does not support thinking'),
    # A reasoning model without "none" (gpt-5, o-series): the value is refused.
    ({"reasoning_efforts": ("minimal", "low", "medium", "high")},
     "Unsupported value: 'reasoning_effort' does not support 'none' with this model."),
])
def test_a_model_that_refuses_the_setting_is_one_line_to_drop_it(server_options, said):
    with ScriptedOpenAI(["unused"], **server_options) as server:
        model = get_model("openai:gpt-4o", thinking="off", base_url=server.url)
        with pytest.raises(ModelError) as refused:
            one_turn(model)
    message = str(refused.value)
    assert message.startswith("model gpt-4o does not take --thinking off (the server refused "
                              "reasoning_effort='none', 400: ") and message.endswith("): drop --thinking")
    assert said in message and "\n" not in message
    assert [r.status for r in server.requests] == [400] and server.remaining == 1  # refused once, not retried


def test_the_same_refusal_without_thinking_is_not_blamed_on_it():
    """A 400 about something else keeps its own message, with or without --thinking."""
    with ScriptedOpenAI(["unused"], supports_images=False) as server:
        result = Agent(model="openai:m", model_options={"base_url": server.url, "thinking": "low"},
                       sandbox="local").run("How many?", images=[sample("coins.png")])
    assert result.error.startswith("model m does not accept images (400)"), result.error


def ask(*args, extra_env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST")}
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_cli_thinking_reaches_an_ollama_server():
    with ScriptedOpenAI(["24 coins."]) as server:
        result = ask("How many coins?", "--model", "ollama:qwen3-vl", "--thinking", "off", "--sandbox", "local",
                     "--quiet", extra_env={"OLLAMA_HOST": server.address})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "24 coins.\n" and result.stderr == ""
    assert server.requests[0].body["reasoning_effort"] == "none"


def test_cli_a_model_without_reasoning_is_one_line_and_a_failure_exit():
    with ScriptedOpenAI(["unused"], reasoning_efforts=None) as server:
        result = ask("How many coins?", "--model", "openai:gpt-4o", "--base-url", server.url, "--thinking", "low",
                     "--sandbox", "local", "--quiet")
    assert result.returncode == 1
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr == ("agentic-vision: model gpt-4o does not take --thinking low (the server refused "
                             "reasoning_effort='low', 400: Unsupported parameter: 'reasoning_effort' is not "
                             "supported with this model.): drop --thinking\n")


def test_cli_ollama_minimal_is_refused_before_anything_starts():
    result = ask("How many coins?", "--model", "ollama:qwen3-vl", "--thinking", "minimal",
                 extra_env={"OLLAMA_HOST": "127.0.0.1:9"})
    assert result.returncode == 2
    assert result.stderr == ("agentic-vision: --thinking 'minimal' is not a level ollama:qwen3-vl takes: "
                             "use one of default, off, low, medium, high\n")


def test_bench_passes_thinking_to_openai_models(tmp_path):
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    suite = tmp_path / "tasks.jsonl"
    suite.write_text('{"id": "coins", "image": "coins.png", "question": "How many coins?", "answer": 24, '
                     '"match": "number"}\n')
    with ScriptedOpenAI(["There are 24 coins."]) as server:
        result = CliRunner().invoke(bench_command, [
            "--suite", str(suite), "--modes", "direct", "--model", "openai:qwen3-vl", "--base-url", server.url,
            "--thinking", "medium", "--out", str(tmp_path / "out"), "--quiet", "--no-traces"])
    assert result.exit_code == 0, result.output
    assert [r.body["reasoning_effort"] for r in server.requests] == ["medium"]
