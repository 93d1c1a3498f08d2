"""A Gemini model name the API does not have: one line with the nearest real name, before
any sandbox starts; a lookup that fails for another reason does not stop the run.  The real
google-genai SDK against the scripted Gemini server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from google import genai
from google.genai import types

from agentic_vision.cli.bench import bench_command
from agentic_vision.errors import InputError
from agentic_vision.loop.agent import Agent
from agentic_vision.models.gemini import GeminiModel
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample

SERVED = ["gemini-3-flash-preview", "gemini-3-pro-preview", "gemini-2.5-flash", "gemini-2.5-flash-lite",
          "gemini-2.5-pro", "text-embedding-004"]


def ask(*args, server, extra_env=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")}
    env.update({"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": server.url, **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "agentic_vision", "ask", str(sample("coins.png")), "How many?",
                           *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("name, line", [
    ("gemini-3-flsh-preview", "Gemini has no model 'gemini-3-flsh-preview': did you mean gemini-3-flash-preview?"),
    ("gemini-3-flash", "Gemini has no model 'gemini-3-flash': did you mean gemini-3-flash-preview?"),
    ("gemni-2.5-pro", "Gemini has no model 'gemni-2.5-pro': did you mean gemini-2.5-pro?"),
    ("gemini-9-ultra", "Gemini has no model 'gemini-9-ultra': use one the API lists, e.g. gemini-3-pro-preview, "
                       "gemini-3-flash-preview, gemini-2.5-pro"),
])
def test_a_wrong_name_is_one_line_with_the_nearest_one(name, line):
    with ScriptedGemini([], models=SERVED) as server:
        with pytest.raises(InputError) as missing:
            GeminiModel(name, api_key="k", base_url=server.url).check_ready()
    assert str(missing.value) == line
    assert [(r.method, r.status) for r in server.lookups] == [("get", 404), ("list", 200)]


def test_a_known_name_costs_one_get_and_is_checked_once():
    with ScriptedGemini([], models=SERVED) as server:
        model = GeminiModel("models/gemini-2.5-flash", api_key="k", base_url=server.url)
        model.check_ready()
        model.check_ready()  # the bench and the chat both ask; the API is asked once
    assert [(r.method, r.model, r.status) for r in server.lookups] == [("get", "gemini-2.5-flash", 200)]


def test_still_one_line_when_the_listing_fails_too():
    errors = {"list": reply.error(503, message="The service is currently unavailable.")}
    with ScriptedGemini([], models=SERVED, models_errors=errors) as server:
        with pytest.raises(InputError) as missing:
            GeminiModel("gemini-3-flsh-preview", api_key="k", base_url=server.url, retries=3).check_ready()
    assert str(missing.value) == ("Gemini has no model 'gemini-3-flsh-preview': "
                                  "check the name (e.g. gemini-3-flash-preview)")
    assert [(r.method, r.status) for r in server.lookups] == [("get", 404), ("list", 503)]  # no retries


@pytest.mark.parametrize("error", [
    reply.error(403, message="Permission denied: the key may not read models."),
    reply.error(500, message="Internal error."),
    reply.error(404, message="Method not found."),  # a proxy that serves generateContent only
])
def test_a_lookup_that_fails_otherwise_does_not_block(error):
    with ScriptedGemini(["24"], models=SERVED, models_errors={"get": error}) as server:
        started = time.monotonic()
        model = GeminiModel("gemini-3-flsh-preview", api_key="k", base_url=server.url, retries=5)
        model.check_ready()
        assert time.monotonic() - started < 3  # tried once, not with the client's five retries
    assert [(r.method, r.status) for r in server.lookups] == [("get", error.error[0])]


def test_vertex_is_not_looked_up(monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "us-central1")
    with ScriptedGemini([], models=SERVED) as server:
        GeminiModel("gemini-3-flsh-preview", base_url=server.url).check_ready()
    assert server.lookups == [] and server.requests == []


def test_the_python_api_fails_before_a_sandbox_starts():
    with ScriptedGemini([], models=SERVED) as server:
        agent = Agent(model="gemini-3-flsh-preview", model_options={"api_key": "k", "base_url": server.url},
                      sandbox="local")
        with pytest.raises(InputError, match="did you mean gemini-3-flash-preview"):
            agent.run("How many?", images=[sample("coins.png")])
    assert [r.method for r in server.lookups] == ["get", "list"] and server.requests == []


def test_cli_a_wrong_name_is_one_line_exit_2_before_any_sandbox(tmp_path):
    # An empty state folder: had a local sandbox been chosen, it would stop with "not set up" (exit 3).
    with ScriptedGemini([], models=SERVED) as server:
        started = time.monotonic()
        result = ask("--model", "gemini-3-flsh-preview", "--sandbox", "local", server=server,
                     extra_env={"AGENTIC_VISION_HOME": str(tmp_path)})
        elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("agentic-vision: Gemini has no model 'gemini-3-flsh-preview': "
                             "did you mean gemini-3-flash-preview?\n")
    assert [r.method for r in server.lookups] == ["get", "list"] and server.requests == []  # nothing generated
    assert not any(tmp_path.iterdir()) and elapsed < 30


@pytest.mark.parametrize("status", [403, 500])
def test_cli_a_refused_lookup_still_runs(status):
    errors = {"get": reply.error(status, message="Scripted lookup refusal.")}
    with ScriptedGemini([reply.call("run_python", {"code": "print(24)"}), reply.text("24")],
                        models=SERVED, models_errors=errors) as server:
        result = ask("--sandbox", "local", "--quiet", server=server)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "24\n" and result.stderr == ""
    assert [r.method for r in server.lookups] == ["get"]
    assert [r.method for r in server.requests] == ["generateContent", "generateContent"]


def test_bench_a_wrong_name_fails_once_before_anything_runs(tmp_path, monkeypatch):
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    suite = tmp_path / "tasks.jsonl"
    suite.write_text('{"id": "coins", "image": "coins.png", "question": "How many coins?", "answer": 24}\n')
    with ScriptedGemini([], models=SERVED) as server:
        monkeypatch.setenv("GEMINI_API_KEY", "k")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        result = CliRunner().invoke(bench_command, ["--suite", str(suite), "--modes", "direct", "--model",
                                                    "gemini-2.5-flsh", "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2
    assert result.output == "agentic-vision: Gemini has no model 'gemini-2.5-flsh': did you mean gemini-2.5-flash?\n"
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_the_scripted_server_knows_any_name_unless_told_which():
    with ScriptedGemini([]) as server:  # the default: any name, as most tests want
        GeminiModel("gemini-2.5-flash-lite", api_key="k", base_url=server.url).check_ready()
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.url))
        listed = [m.name for m in client.models.list()]
    assert listed == ["models/gemini-3-flash-preview"]
    assert [(r.method, r.model, r.status) for r in server.lookups] == [
        ("get", "gemini-2.5-flash-lite", 200), ("list", None, 200)]
