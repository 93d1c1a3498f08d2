"""`agentic-vision mcp` over stdio, driven by the official MCP SDK as a client would."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time

import anyio
import numpy as np
import pytest

from mcp import Client

from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import sample
from mcp_support import (PYTHON, TOOLS, alive, decode, descendants, sandboxes_of, save_astronaut, server_pid_under,
                         stdio_params, sync_client, text_of, wait_for)


def session(tmp_path, *args, env=None, body):
    """Runs ``body(client)`` against a server of its own, started in ``tmp_path`` with ``args``."""
    async def main():
        async with Client(stdio_params(*args, cwd=tmp_path, env=env)) as client:
            return await body(client)

    return anyio.run(main)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that do not need their own, each in a session of its own name.

    It runs in ``allowed``, its only allowed directory, next to ``outside``."""
    root = tmp_path_factory.mktemp("mcp-stdio")
    allowed, outside = root / "allowed", root / "outside"
    allowed.mkdir(), outside.mkdir()
    with sync_client(stdio_params("--timeout", "10", "--max-sessions", "12", "--allow-dir", str(allowed),
                                  cwd=allowed)) as client:
        client.allowed, client.outside = allowed, outside
        yield client


def test_tools_resources_and_their_schemas(shared):
    tools = shared.tools()
    assert set(tools) == TOOLS
    run = tools["run_python"].input_schema
    assert run["required"] == ["code"]
    assert run["properties"]["code"]["type"] == "string"
    assert run["properties"]["files"]["anyOf"][0] == {"items": {"type": "string"}, "type": "array"}
    assert {"timeout", "session"} <= set(run["properties"]) and "at most 10" in run["properties"]["timeout"]["description"]
    assert tools["ask"].input_schema["required"] == ["question", "images"]
    assert tools["add_files"].input_schema["required"] == ["paths"]
    assert tools["add_image"].input_schema["required"] == ["name", "data"]
    assert "required" not in tools["list_files"].input_schema and "ctx" not in tools["list_files"].input_schema["properties"]
    assert tools["list_files"].annotations.read_only_hint is True
    assert set(shared.resources()) == {"agentic-vision://limits", "agentic-vision://libraries"}
    limits = json.loads(shared.read("agentic-vision://limits"))
    assert limits["timeout_s"] == 10 and limits["sandbox"] == "local"
    assert limits["sandbox_limits"]["memory_bytes"] > 0 and limits["allowed_dirs"] == [str(shared.allowed.resolve())]
    libraries = {entry["name"]: entry for entry in json.loads(shared.read("agentic-vision://libraries"))}
    assert sum(entry["hosted"] for entry in libraries.values()) == 37  # Gemini's list
    assert libraries["pypdfium2"] == {"name": "pypdfium2", "import": "pypdfium2", "hosted": False, "available": True}
    assert libraries["numpy"]["available"] and libraries["opencv-python"]["import"] == "cv2"


def test_a_crop_of_a_host_image_comes_back_as_image_content(shared):
    pixels = save_astronaut(shared.allowed / "astronaut.png")
    result = shared.call("run_python", {
        "code": "from PIL import Image\nim = Image.open('astronaut.png')\nprint(im.size)\n"
                "im.crop((100, 50, 300, 250)).show()",
        "files": [str(shared.allowed / "astronaut.png")],
        "session": "crop",
    })
    assert not result.is_error
    lines = text_of(result).splitlines()
    assert lines[0] == "OUTCOME_OK" and lines[1] == "(512, 512)"
    assert "[image 1: 200x200]" in lines and "[copied into the working directory: astronaut.png]" in lines
    assert "image 1 from astronaut.png [100, 50, 300, 250]" in lines  # where in the input it came from
    [image] = result.content[1:]
    assert image.mime_type == "image/png"
    assert np.array_equal(decode(image), pixels[50:250, 100:300])


def test_state_is_kept_between_calls_and_sessions_are_apart(shared):
    first = shared.call("run_python", {"code": "x = 41\nopen('note.txt', 'w').write('kept')"})
    second = shared.call("run_python", {"code": "print(x + 1, open('note.txt').read())"})
    other = shared.call("run_python", {"code": "print(x)", "session": "other"})
    listing = shared.call("list_files", {})
    reset = shared.call("reset_session", {})
    again = shared.call("reset_session", {})
    after = shared.call("run_python", {"code": "print(x)"})
    assert text_of(first) == "OUTCOME_OK\n" and not first.is_error
    assert text_of(second) == "OUTCOME_OK\n42 kept\n"
    assert other.is_error and "NameError" in text_of(other)
    assert text_of(listing) == "note.txt\t4 bytes\n"
    assert text_of(reset) == "session 'default' closed" and text_of(again) == "no session 'default' was open"
    assert after.is_error and "NameError" in text_of(after)
    bad_name = shared.call("run_python", {"code": "print(1)", "session": "../x"})
    assert bad_name.is_error and "session name" in text_of(bad_name)


def test_failing_code_is_an_error_result_with_the_traceback(shared):
    failed = shared.call("run_python", {"code": "def f():\n    return 1 / 0\nf()", "session": "fail"})
    still = shared.call("run_python", {"code": "print('still here')", "session": "fail"})
    assert failed.is_error
    text = text_of(failed)
    assert text.startswith("OUTCOME_FAILED\nTraceback (most recent call last):")
    assert "in f" in text and "ZeroDivisionError: division by zero" in text
    assert text_of(still) == "OUTCOME_OK\nstill here\n"


def test_an_endless_loop_is_stopped_by_the_timeout(shared):
    started = time.monotonic()
    looped = shared.call("run_python", {"code": "print('spinning', flush=True)\nwhile True:\n    pass",
                                        "timeout": 1.5, "session": "loop"})
    took = time.monotonic() - started
    too_long = shared.call("run_python", {"code": "print(1)", "timeout": 60, "session": "loop"})
    after = shared.call("run_python", {"code": "print('fresh')", "session": "loop"})
    assert looped.is_error and text_of(looped).startswith("OUTCOME_DEADLINE_EXCEEDED\nspinning\n")
    assert "time limit of 1.5 s" in text_of(looped)
    assert took < 9  # the call's own limit, not the server's 10 s
    assert too_long.is_error and text_of(too_long) == (
        "timeout must be more than 0 and at most 10 seconds (the server's limit)")
    assert text_of(after) == "OUTCOME_OK\nfresh\n"


def test_files_outside_the_allowed_directory_are_refused_and_nothing_is_read(shared):
    allowed, outside = shared.allowed, shared.outside
    (outside / "secret.txt").write_text("do not read")
    (allowed / "inside.txt").write_text("fine")
    (allowed / "link.txt").symlink_to(outside / "secret.txt")
    (allowed / "sub").mkdir()
    (allowed / "alias.txt").symlink_to(allowed / "inside.txt")  # a link that stays inside is fine
    attempts = [
        [str(outside / "secret.txt")],                       # an absolute path
        ["../outside/secret.txt"],                           # relative, climbing out
        [str(allowed / "sub" / ".." / ".." / "outside" / "secret.txt")],
        ["link.txt"],                                        # a symlink pointing out
        [str(allowed / "inside.txt"), str(outside / "secret.txt")],  # one bad path spoils the call
        ["/etc/passwd"],
    ]
    refused = [shared.call("run_python", {"code": "print(1)", "files": paths, "session": "files"}) for paths in attempts]
    refused.append(shared.call("add_files", {"paths": ["link.txt"], "session": "files"}))
    refused.append(shared.call("ask", {"question": "?", "images": [str(outside / "secret.txt")]}))
    for result in refused:
        text = text_of(result)
        assert result.is_error and "\n" not in text and "outside the allowed directories" in text, text
        assert "do not read" not in text
    assert text_of(shared.call("list_files", {"session": "files"})) == "the working directory is empty\n"
    fine = shared.call("add_files", {"paths": ["inside.txt", "alias.txt"], "session": "files"})
    assert text_of(fine) == "added: inside.txt (4 bytes), alias.txt (4 bytes)"
    read = shared.call("run_python", {"code": "print(open('inside.txt').read(), open('alias.txt').read())",
                                      "session": "files"})
    assert text_of(read) == "OUTCOME_OK\nfine fine\n"
    missing = shared.call("add_files", {"paths": ["nope.txt"], "session": "files"})
    assert missing.is_error and text_of(missing) == "nope.txt: no such file"
    os.mkfifo(allowed / "pipe")  # reading it would hang the call: it is refused unopened
    fifo = shared.call("add_files", {"paths": ["pipe"], "session": "files"})
    assert fifo.is_error and text_of(fifo) == "pipe is not a regular file"


def test_an_uploaded_image_lands_in_the_working_directory(shared):
    data = base64.b64encode(sample("coins.png").read_bytes()).decode()
    added = shared.call("add_image", {"name": "coins.png", "data": data, "session": "upload"})
    used = shared.call("run_python", {"code": "from PIL import Image\nprint(Image.open('coins.png').size)",
                                      "session": "upload"})
    bad = shared.call("add_image", {"name": "x.png", "data": "not base64!", "session": "upload"})
    not_image = shared.call("add_image", {"name": "y.png", "data": base64.b64encode(b"hello").decode(),
                                          "session": "upload"})
    escape = shared.call("add_image", {"name": "../z.png", "data": data, "session": "upload"})
    assert text_of(added) == "added: coins.png (384x303)"
    assert text_of(used) == "OUTCOME_OK\n(384, 303)\n"
    assert bad.is_error and text_of(bad) == "data is not valid base64"
    assert not_image.is_error and "not a readable image" in text_of(not_image)
    assert escape.is_error and "plain file name" in text_of(escape)


def test_ask_without_a_key_is_one_line(shared):
    (shared.allowed / "coins.png").write_bytes(sample("coins.png").read_bytes())
    result = shared.call("ask", {"question": "How many?", "images": ["coins.png"]})
    assert result.is_error and text_of(result).startswith("no API key") and "\n" not in text_of(result)


def test_images_are_downscaled_and_capped_per_result(tmp_path):
    code = textwrap.dedent("""
        from PIL import Image
        import numpy as np
        rng = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (1200, 1800, 3), dtype=np.uint8)).show()
    """)

    async def body(client):
        return await client.call_tool("run_python", {"code": code})

    # Each noise image is about 125 KiB as a 600x400 JPEG: a 300 KiB cap holds two of the three.
    result = session(tmp_path, "--image-max-side", "600", "--max-image-bytes", str(300 * 1024), body=body)
    text = text_of(result)
    images = result.content[1:]
    assert len(images) == 2
    assert all(decode(im).shape[:2] == (400, 600) for im in images)
    assert "[image 1: 1800x1200, sent at 600x400]" in text
    assert "[image 3 is not included: one result carries at most 300 KiB" in text
    assert sum(len(base64.b64decode(im.data)) for im in images) <= 300 * 1024


CROP = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 100, 80)).show()\nprint('cropped')"


def test_ask_runs_the_loop_against_the_scripted_gemini_server(tmp_path):
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    traces = tmp_path / "traces"
    script = [reply.call("run_python", {"code": CROP}, thought="Zoom in first."), reply.text("24 coins.")]

    async def body(client):
        return await client.call_tool("ask", {"question": "How many coins?", "images": ["coins.png"], "max_steps": 3})

    with ScriptedGemini(script) as gemini:
        result = session(tmp_path, "--trace-dir", str(traces), env={"GEMINI_API_KEY": "test-key",
                                                                     "GOOGLE_GEMINI_BASE_URL": gemini.url}, body=body)
        sent = gemini.requests[0].body
    assert not result.is_error, text_of(result)
    lines = text_of(result).splitlines()
    assert lines[0] == "24 coins."
    assert "1 step(s), stop reason: answered, model: gemini-3-flash-preview" in lines
    assert any(line.startswith("step 1: OUTCOME_OK in ") and line.endswith("from PIL import Image -> images 100x80 from coins.png [0, 0, 100, 80]")
               for line in lines)
    [trace_line] = [line for line in lines if line.startswith("trace: ")]
    trace = trace_line.removeprefix("trace: ")
    assert os.path.dirname(trace) == str(traces.resolve()) and "How many coins?" in open(trace).read()
    [image] = result.content[1:]
    assert decode(image).shape == (80, 100, 3)
    assert any("inlineData" in part for part in sent["contents"][0]["parts"])  # the model saw the image


def test_a_cancelled_ask_stops_the_loop_and_its_sandbox(tmp_path):
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    router = reply.by_question({"Spin?": [reply.call("run_python", {"code": "while True:\n    pass"})],
                                "Count?": ["24"]})

    async def body(client):
        server = server_pid_under(os.getpid(), tmp_path)
        async with anyio.create_task_group() as group:
            group.start_soon(client.call_tool, "ask", {"question": "Spin?", "images": ["coins.png"]})
            running = await anyio.to_thread.run_sync(lambda: wait_for(lambda: sandboxes_of(server), 30))
            await anyio.sleep(1)  # inside the endless loop
            group.cancel_scope.cancel()
        gone = await anyio.to_thread.run_sync(lambda: wait_for(lambda: not alive(running), 10))
        after = await client.call_tool("ask", {"question": "Count?", "images": ["coins.png"]})
        return running, gone, after

    with ScriptedGemini(router=router) as gemini:
        running, gone, after = session(tmp_path, "--timeout", "60", body=body,
                                       env={"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": gemini.url})
    assert running and gone, "the cancelled ask's sandbox is still running"
    assert text_of(after) == "24\n"


def test_a_cancelled_call_stops_its_run(tmp_path):
    async def body(client):
        await client.call_tool("run_python", {"code": "kept = 1"})
        server = server_pid_under(os.getpid(), tmp_path)
        before = sandboxes_of(server)
        assert before  # the session's sandbox
        with anyio.move_on_after(2):
            await client.call_tool("run_python", {"code": "while True:\n    pass"})
        gone = await anyio.to_thread.run_sync(lambda: wait_for(lambda: not alive(before), 10))
        after = await client.call_tool("run_python", {"code": "try:\n    kept\nexcept NameError:\n    print('restarted')"})
        return gone, after

    gone, after = session(tmp_path, "--timeout", "60", body=body)
    assert gone, "the cancelled run's sandbox is still running"
    assert text_of(after) == "OUTCOME_OK\nrestarted\n"


CLIENT = """
import anyio, sys
from mcp import Client
from mcp.client.stdio import StdioServerParameters

async def main():
    params = StdioServerParameters(command=sys.executable, args=["-m", "agentic_vision.cli", "mcp", "--sandbox", "local",
                                                                 "--timeout", "120"])
    async with Client(params) as client:
        print("connected", flush=True)
        await client.call_tool("run_python", {"code": "while True:\\n    pass"})

anyio.run(main)
"""


def test_a_client_that_disconnects_mid_run_leaves_no_sandbox_behind(tmp_path):
    client = subprocess.Popen([PYTHON, "-c", CLIENT], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline() == "connected\n"
        server = wait_for(lambda: server_pid_under(client.pid, tmp_path), 10)
        assert server
        running = wait_for(lambda: sandboxes_of(server), 30)
        assert running, "the run never started a sandbox"
        everything = set(descendants(server)) | {server}
        client.kill()  # no goodbye: the pipes just close
        client.wait()
        left = wait_for(lambda: not alive(everything), 15)
        assert left, f"still running after the client left: {alive(everything)}"
    finally:
        client.kill()
        client.wait()
        client.stdout.close()


def test_bad_options_are_one_line_and_a_broad_directory_is_warned_about(tmp_path):
    bad = subprocess.run([PYTHON, "-m", "agentic_vision.cli", "mcp", "--allow-dir", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a directory" in bad.stderr
    broad = subprocess.run([PYTHON, "-m", "agentic_vision.cli", "mcp", "--sandbox", "local"], cwd="/",
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert broad.returncode == 0 and broad.stdout == ""  # no client: it ends at once
    assert broad.stderr == ("agentic-vision mcp: clients may copy any file under / into the sandbox; "
                            "narrow it with --allow-dir\n")


def test_the_readme_client_configuration_starts_the_server(tmp_path):
    import re
    from pathlib import Path

    from mcp.client.stdio import StdioServerParameters

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    [block] = re.findall(r"```json\n(.*?)```", readme, flags=re.S)
    entry = json.loads(block)["mcpServers"]["agentic-vision"]
    command = Path(sys.executable).with_name(entry["command"])  # the console script of this installation
    args = [str(tmp_path) if arg.startswith("/home/me/") else arg for arg in entry["args"]]
    params = StdioServerParameters(command=str(command), args=[*args, "--sandbox", "local"], cwd=str(tmp_path))
    with sync_client(params) as client:
        assert set(client.tools()) == TOOLS
        assert json.loads(client.read("agentic-vision://limits"))["allowed_dirs"] == [str(tmp_path.resolve())]
