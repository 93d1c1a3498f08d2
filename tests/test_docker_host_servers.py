"""--docker-host on the servers and the benchmark: their sandboxes run on the engine it names.

Every run goes through the counting TCP forwarder (tcp_forwarder.py) in front of
the local engine, with no DOCKER_HOST in the environment: containers started and
inputs and images carried over it are what show the option took effect.  Real
clients: the MCP SDK over stdio, the google-genai SDK against the gateway, the
bench command; the model is the scripted Gemini server.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google import genai
from google.genai import types
from mcp.client.stdio import StdioServerParameters
from PIL import Image

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample
from mcp_support import PYTHON, decode, sync_client, text_of
from tcp_forwarder import closed_port, engine_forwarder
from test_docker import engine  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]
CROP = "from PIL import Image\nim = Image.open('coins.png')\nprint(im.size)\nim.crop((0, 0, 100, 80)).show()"
COINS = sample("coins.png")  # 384x303


def clean_env(**extra) -> dict:
    """This environment without any Docker or model settings, plus ``extra``."""
    drop = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_") and k not in drop}
    return {**env, **extra}


@pytest.fixture(scope="module")
def forwarder(engine):  # noqa: F811
    with engine_forwarder() as fwd:
        yield fwd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -- mcp ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mcp_client(forwarder, tmp_path_factory):
    """`agentic-vision mcp --sandbox docker --docker-host <forwarder>` over stdio; ask's model is scripted."""
    folder = tmp_path_factory.mktemp("mcp-docker-host")
    (folder / "coins.png").write_bytes(COINS.read_bytes())
    script = [reply.call("run_python", {"code": CROP}), reply.text("24 coins.")]
    with ScriptedGemini(script) as gemini:
        params = StdioServerParameters(
            command=PYTHON, cwd=str(folder),
            args=["-m", "agentic_vision.cli", "mcp", "--sandbox", "docker", "--docker-host", forwarder.address],
            env=clean_env(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=gemini.url))
        with sync_client(params) as client:
            client.folder = folder
            yield client


def test_mcp_limits_name_the_engine(mcp_client, forwarder):
    limits = json.loads(mcp_client.read("agentic-vision://limits"))
    assert limits["sandbox"] == "docker" and limits["docker_engine"] == forwarder.address


def test_mcp_run_python_runs_on_the_given_engine(mcp_client, forwarder):
    up, down = forwarder.bytes_up, forwarder.bytes_down
    result = mcp_client.call("run_python", {"code": CROP, "files": [str(mcp_client.folder / "coins.png")]})
    assert not result.is_error, text_of(result)
    assert text_of(result).splitlines()[:2] == ["OUTCOME_OK", "(384, 303)"]
    [image] = result.content[1:]
    assert decode(image).shape == (80, 100, 3)
    # The input went to the container and the crop came back, over TCP.
    assert forwarder.bytes_up - up > COINS.stat().st_size
    assert forwarder.bytes_down - down > len(base64.b64decode(image.data))


def test_mcp_ask_runs_the_models_code_on_the_given_engine(mcp_client, forwarder):
    up = forwarder.bytes_up
    result = mcp_client.call("ask", {"question": "How many coins?", "images": ["coins.png"], "max_steps": 3})
    assert not result.is_error, text_of(result)
    assert text_of(result).splitlines()[0] == "24 coins."
    assert any(line.startswith("step 1: OUTCOME_OK") for line in text_of(result).splitlines())
    assert forwarder.bytes_up - up > COINS.stat().st_size  # the ask's own sandbox got the image over TCP


# -- serve ----------------------------------------------------------------------------------------


def gateway_router(request):
    code = CROP.replace("coins.png", "image-1.png")  # the gateway names inline images image-N
    return [reply.call("run_python", {"code": code}), reply.text("Coins.")][request.model_turns()]


@pytest.fixture(scope="module")
def upstream():
    with ScriptedGemini(router=gateway_router) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(forwarder, upstream):
    """`agentic-vision serve --sandbox docker --docker-host <forwarder>`: its URL, first line and process."""
    with serving(forwarder, upstream) as running:
        yield running


@contextlib.contextmanager
def serving(forwarder, upstream):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_vision", "serve", "--sandbox", "docker", "--docker-host", forwarder.address,
         "--port", str(port), "--log-level", "warning"],
        env=clean_env(GOOGLE_GEMINI_BASE_URL=upstream.url), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                ended = proc.poll() is not None
                assert not ended and time.monotonic() < deadline, first + (proc.stderr.read() if ended else "")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", first, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def containers_of(pid: int) -> list:
    """The sandbox containers the process ``pid`` started on the local engine, removed or not."""
    import docker

    client = docker.from_env()  # the engine of this environment, as the forwarder found it
    try:
        return client.api.containers(all=True, filters={"label": f"org.agentic-vision.owner-pid={pid}"})
    finally:
        client.close()


def test_serve_runs_requests_code_on_the_given_engine(gateway, forwarder):
    url, first, _ = gateway
    assert f"(sandbox docker at {forwarder.address}; Gemini at " in first
    up, down = forwarder.bytes_up, forwarder.bytes_down
    client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=url))
    response = client.models.generate_content(
        model="gemini-3-flash-preview",
        contents=[types.Part.from_bytes(data=COINS.read_bytes(), mime_type="image/png"), "How many coins?"],
        config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]),
    )
    parts = response.candidates[0].content.parts
    [result] = [p.code_execution_result for p in parts if p.code_execution_result is not None]
    assert (result.outcome, result.output) == (types.Outcome.OUTCOME_OK, "(384, 303)\n")
    [image] = [p.as_image() for p in parts if p.as_image() is not None]
    assert Image.open(io.BytesIO(image.image_bytes)).size == (100, 80)
    assert response.text == "Coins."
    assert forwarder.bytes_up - up > COINS.stat().st_size
    assert forwarder.bytes_down - down > len(image.image_bytes)


def test_serve_removes_its_containers_when_terminated(forwarder, upstream):
    with serving(forwarder, upstream) as (url, _, proc):  # its own server: it is terminated here
        client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=url))
        response = client.models.generate_content(
            model="gemini-3-flash-preview",
            contents=[types.Part.from_bytes(data=COINS.read_bytes(), mime_type="image/png"), "How many coins?"],
            config=types.GenerateContentConfig(tools=[types.Tool(code_execution=types.ToolCodeExecution())]))
        assert response.text == "Coins."
        assert containers_of(proc.pid)  # the warm pool this request started
        proc.terminate()
    assert proc.wait(timeout=30) == 128 + 15
    assert containers_of(proc.pid) == []


# -- bench ----------------------------------------------------------------------------------------

TASKS = [
    {"id": "coins", "image": "coins.png", "question": "How many coins are there?", "answer": 24, "match": "number"},
    {"id": "coins-again", "image": "coins.png", "question": "Count the coins.", "answer": 24, "match": "number"},
]


def bench_router(request):
    return [reply.call("run_python", {"code": CROP}), reply.text("There are 24 coins.")][request.model_turns()]


def make_suite(folder: Path) -> Path:
    (folder / "coins.png").write_bytes(COINS.read_bytes())
    path = folder / "tasks.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return path


def bench(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agentic_vision", "bench", "--modes", "local", "--quiet", *args],
                          capture_output=True, text=True, env=env, timeout=170)


def test_bench_runs_the_local_mode_on_the_given_engine(forwarder, tmp_path):
    suite, out = make_suite(tmp_path), tmp_path / "out"
    up = forwarder.bytes_up
    with ScriptedGemini(router=bench_router) as gemini:
        done = bench("--suite", str(suite), "--sandbox", "docker", "--docker-host", forwarder.address,
                     "--out", str(out), "--limit", "2",
                     env=clean_env(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=gemini.url))
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in records) == ["coins", "coins-again"]
    for r in records:
        assert r["correct"] and r["steps"][0]["output"] == "(384, 303)\n"
        assert r["node"]["sandbox"] == "docker" and r["node"]["docker_engine"] == forwarder.address
    assert json.loads((out / "run.json").read_text())["docker_engine"] == forwarder.address
    assert f"sandbox: docker at {forwarder.address};" in (out / "report.md").read_text()
    assert forwarder.bytes_up - up > 2 * COINS.stat().st_size  # each episode's sandbox got the image over TCP


# -- refused at start: one line, nothing served or run -------------------------------------------------


def start(command: str, tmp_path, *args) -> tuple[subprocess.CompletedProcess, float]:
    extra = {"mcp": [], "serve": ["--port", str(free_port())], "bench": [
        "--suite", str(make_suite(tmp_path)), "--out", str(tmp_path / "out"), "--modes", "local"]}[command]
    started = time.monotonic()
    with ScriptedGemini([]) as gemini:
        done = subprocess.run([sys.executable, "-m", "agentic_vision", command, *extra, *args], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=60,
                              env=clean_env(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=gemini.url))
        assert not gemini.requests  # nothing was asked of the model
    return done, time.monotonic() - started


@pytest.mark.parametrize("command", ["mcp", "serve", "bench"])
def test_an_engine_that_does_not_answer_fails_at_start(command, tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    done, took = start(command, tmp_path, "--sandbox", "docker", "--docker-host", address)
    assert done.returncode == 3
    message = one_line(done.stderr)
    assert message.startswith(f"agentic-vision: no Docker engine answers at {address} (connection refused)")
    assert done.stdout == "" and took < 20
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.mark.parametrize("command", ["mcp", "serve", "bench", "exec"])
def test_a_docker_host_with_the_local_sandbox_is_refused(command, tmp_path):
    if command == "exec":
        done = subprocess.run([sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "local",
                               "--docker-host", "tcp://127.0.0.1:2375", "print(1)"], capture_output=True, text=True,
                              env=clean_env(), timeout=60)
    else:
        done, _ = start(command, tmp_path, "--sandbox", "local", "--docker-host", "tcp://127.0.0.1:2375")
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == ("agentic-vision: --docker-host is for the Docker sandbox, not the local one: "
                                     "drop it, or use --sandbox docker or auto")


def test_the_configurations_refuse_a_docker_host_with_the_local_sandbox():
    from agentic_vision.bench.config import RunConfig
    from agentic_vision.errors import InputError
    from agentic_vision.servers.gateway import GatewayConfig
    from agentic_vision.servers.mcp import ServerConfig

    for make in (lambda **kw: RunConfig("gemini-3-flash-preview", **kw), GatewayConfig, ServerConfig):
        with pytest.raises(InputError) as caught:
            make(sandbox="local", docker_host="tcp://127.0.0.1:2375")
        assert str(caught.value) == ("docker_host is for the Docker sandbox, not the local one: drop it, "
                                     "or use sandbox 'docker' or 'auto'")
        assert make(sandbox="docker", docker_host="tcp://127.0.0.1:2375").docker_host == "tcp://127.0.0.1:2375"
