"""What the command line says, written for the person at the terminal: where a value came
from, what to type, why a choice was made; never words meant for the model."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys

import click
import pytest

from agentic_vision.cli import cli
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import require_docker, sample, require

PROG = "python -m agentic_vision"  # how click names the command run as below


def run(*args, env=None, timeout=300, **kwargs):
    base = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY",
                                                                 "GOOGLE_GEMINI_BASE_URL", "AGENTIC_VISION_SANDBOX",
                                                                 "AGENTIC_VISION_MODEL", "DOCKER_HOST")}
    return subprocess.run([sys.executable, "-m", "agentic_vision", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=timeout, **kwargs)


def commands(group: click.Group, path: tuple = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, path + (name,))
        else:
            yield path + (name,), command


def test_every_option_read_from_the_environment_shows_its_variable_in_help():
    shown = []
    for path, command in commands(cli):
        variables = [p.envvar for p in command.params if isinstance(p, click.Option) and p.envvar]
        if not variables:
            continue
        text = " ".join(run(*path, "--help", timeout=60).stdout.split())
        for variable in variables:
            assert f"env var: {variable}" in text, (path, variable)
            shown.append(variable)
    assert {"AGENTIC_VISION_MODEL", "AGENTIC_VISION_SANDBOX", "AGENTIC_VISION_AUTH_KEY"} <= set(shown)


def test_a_bad_value_from_a_variable_names_the_variable():
    result = run("exec", "print(1)", env={"AGENTIC_VISION_SANDBOX": "lcoal"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("agentic-vision: Invalid value for AGENTIC_VISION_SANDBOX (the environment variable for "
                             "--sandbox): 'lcoal' is not one of 'auto', 'local', 'docker'. "
                             f"(see '{PROG} exec --help')\n")
    flag = run("exec", "--sandbox", "lcoal", "print(1)", timeout=60)  # typed: the flag, not the variable
    assert flag.stderr.startswith("agentic-vision: Invalid value for '--sandbox': 'lcoal' is not one of")


@pytest.mark.parametrize("words", [
    ["-5 or more?", "--sandbox", "local"],
    ["--", "-5 or more?", "--sandbox", "local"],
    ["--sandbox", "local", "--", "-5 or more?"],
])
def test_a_question_that_starts_with_a_dash_works_with_options_anywhere(words):
    with ScriptedGemini([reply.text("More than 5.")]) as server:
        result = run("ask", str(sample("coins.png")), *words, env={"GEMINI_API_KEY": "k",
                                                                   "GOOGLE_GEMINI_BASE_URL": server.url})
        question = server.requests[0].first_user_text() if server.requests else ""
    assert (result.returncode, result.stdout) == (0, "More than 5.\n"), result.stderr
    assert "sandbox: local" in result.stderr and "-5 or more?" in question


def test_an_unknown_dash_word_says_where_a_question_goes():
    result = run("ask", str(sample("coins.png")), "-x", env={"GEMINI_API_KEY": "k"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("agentic-vision: No such option '-x'. (a question that starts with '-' goes after '--': "
                             f"{PROG} ask IMAGE -- \"-x ...\"; options: '{PROG} ask --help')\n")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_remote_engine_that_is_down_is_not_told_to_run_a_checkout_script(tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    result = run("exec", "--sandbox", "docker", "--docker-host", address, "print(1)", cwd=tmp_path, timeout=60)
    assert result.returncode == 3
    assert result.stderr == (f"agentic-vision: no Docker engine answers at {address} (connection refused): start the "
                             "Docker engine on that host, or set DOCKER_HOST / --docker-host to a running engine\n")


def test_auto_says_why_a_named_engine_is_not_used(tmp_path):
    address = f"tcp://127.0.0.1:{closed_port()}"
    result = run("exec", "--out", str(tmp_path), "print(1)", env={"DOCKER_HOST": address}, timeout=120)
    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr
    assert result.stderr.splitlines() == [
        f"agentic-vision: note: using the local sandbox, not Docker: no Docker engine answers at {address} "
        "(connection refused): start the Docker engine on that host, or set DOCKER_HOST / --docker-host to a "
        "running engine",
        "sandbox: local",
    ]


def test_sandbox_info_shows_docker_when_the_local_sandbox_is_not_set_up(tmp_path):
    result = run("sandbox", "info", env={"AGENTIC_VISION_HOME": str(tmp_path)}, timeout=120)
    lines = result.stdout.splitlines()
    assert lines[0] == ("local sandbox: unavailable: the local sandbox's library environment is not set up: run "
                        "'agentic-vision sandbox setup' (once, a few minutes) or use --sandbox docker")
    assert lines[1].startswith("docker engine: ")
    assert result.returncode == (3 if "unavailable" in lines[1] else 0)


def test_sandbox_build_of_a_current_image_asks_no_registry(tmp_path):
    require_docker()
    from agentic_vision.sandboxing.docker_build import HASH_LABEL, build_files
    from agentic_vision.sandboxing.docker_engine import connect, image_name
    from agentic_vision.sandboxing.image_source import hash_of

    engine = connect(None)
    current = image_name()
    labels = engine.api.inspect_image(current)["Config"]["Labels"] or {}
    require(labels.get(HASH_LABEL) == hash_of(build_files()),
            f"{current} built from these files (scripts/build-sandbox-image.sh; a test never rebuilds it)")
    tag = f"agentic-vision/sandbox:test-current-{os.getpid()}"  # a second name for it, removed afterwards
    engine.api.tag(current, "agentic-vision/sandbox", tag.rpartition(":")[2])
    try:
        result = run("sandbox", "build", env={"AGENTIC_VISION_DOCKER_IMAGE": tag}, timeout=300)
    finally:
        engine.api.remove_image(tag, noprune=True)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"[sandbox build] {tag} is current (hash ") and "pull" not in result.stderr


BLOCKED = "import sys; sys.modules['skimage'] = sys.modules['matplotlib'] = None; "  # as if not installed


def test_bench_without_the_bench_extra_says_which_extra_brings_the_other_tasks(tmp_path):
    note = ("note: only 3 of the 48 builtin tasks can run here: pip install 'agentic-vision[bench]' "
            "(scikit-image, matplotlib) brings the other 45")
    with ScriptedGemini(router=lambda request: reply.text("BLUE")) as server:
        env = {**os.environ, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url}
        result = subprocess.run(
            [sys.executable, "-c", BLOCKED + "from agentic_vision.cli import main; main()", "bench", "--modes", "direct",
             "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == note and lines[-1] == note  # first, and again under the numbers
    assert len(server.requests) == 3


def test_the_bench_counter_on_a_terminal_gives_no_time_left_from_its_first_results(tmp_path):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    rows = [{"id": f"coins-{n}", "image": "coins.png", "question": f"How many coins ({n})?", "answer": 24,
             "match": "number"} for n in range(6)]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    master, slave = pty.openpty()  # the counter is for a terminal only
    with ScriptedGemini(router=lambda request: reply.text("24")) as server:
        env = {**os.environ, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url}
        proc = subprocess.Popen([sys.executable, "-m", "agentic_vision", "bench", "--suite", str(tmp_path / "tasks.jsonl"),
                                 "--modes", "direct", "--concurrency", "1", "--out", str(tmp_path / "out")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        seen = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the command closed the terminal
                break
            if not data:
                break
            seen += data
        proc.communicate(timeout=120)
        os.close(master)
    assert proc.returncode == 0, seen
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    # rich redraws a few times a second, so which counts appear depends on speed: the first and the last do.
    first, last = shown.split("6/6", 1)
    assert "0/6" in first and "time left known after 5 results" in first and "~" not in first, shown
    assert re.search(r"~\d+s left", last), shown
    from agentic_vision.cli.progress import BenchProgress

    assert [BenchProgress._left(done, 6, 40.0) for done in (1, 4, 5, 6)] == [
        "time left known after 5 results", "time left known after 5 results", "~8s left", "~0s left"]


def test_ask_on_a_folder_with_a_broken_image_answers_and_names_what_it_skipped(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(sample("coins.png"), folder / "coins.png")
    (folder / "broken.jpg").write_bytes(sample("coins.png").read_bytes()[:2000])
    (folder / "notes.txt").write_text("shopping list")
    with ScriptedGemini([reply.text("24 coins.")]) as server:
        result = run("ask", str(folder), "How many coins?", "--sandbox", "local",
                     env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
        sent = [im for r in server.requests for im in server.images_in_request(server.requests.index(r))]
    assert (result.returncode, result.stdout) == (0, "24 coins.\n"), result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: skipped 1 file in {folder} that is not an image or a PDF: notes.txt",
                     f"note: skipped {folder / 'broken.jpg'}: not a readable image: the file is cut short; "
                     "check the file"]
    assert len(sent) == 1  # coins.png alone went to the model
    with ScriptedGemini([reply.text("24 coins.")]) as server:
        quiet = run("ask", str(folder), "How many coins?", "--sandbox", "local", "--json",
                    env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
    assert json.loads(quiet.stdout)["skipped"] == [note[len("note: "):] for note in notes]  # --json says it too


def test_serve_on_auto_says_why_a_named_engine_is_not_used():
    address = f"tcp://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("AGENTIC_VISION_SANDBOX", "GEMINI_API_KEY")}
    proc = subprocess.Popen([sys.executable, "-m", "agentic_vision", "serve", "--port", "0"], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**env, "DOCKER_HOST": address})
    try:
        first, second = proc.stderr.readline(), proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert first == (f"agentic-vision: note: using the local sandbox, not Docker: no Docker engine answers at {address} "
                     "(connection refused): start the Docker engine on that host, or set DOCKER_HOST / --docker-host "
                     "to a running engine\n")
    assert "(sandbox auto, now local;" in second
