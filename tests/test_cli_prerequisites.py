"""Everything a run or a server needs is checked before it spends work or listens: the sandbox
of every mode, the files it will write, locks against a second run on the same state."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from agentic_vision.errors import SandboxUnavailable
from agentic_vision.sandboxing import environment
from agentic_vision.sandboxing.environment import STAMP, requirements_hash
from agentic_vision.testing.gemini_server import ScriptedGemini, reply
from conftest import mounted_tmpfs, sample

SETUP_LINE = ("agentic-vision: the local sandbox's library environment is not set up: run "
              "'agentic-vision sandbox setup' (once, a few minutes) or use --sandbox docker\n")


def run(*args, env=None, timeout=300, **kwargs):
    base = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY",
                                                                 "GOOGLE_GEMINI_BASE_URL", "AGENTIC_VISION_SANDBOX")}
    return subprocess.run([sys.executable, "-m", "agentic_vision", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=timeout, **kwargs)


def one_task_suite(tmp_path):
    shutil.copy(sample("coins.png"), tmp_path / "coins.png")
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "coins", "image": "coins.png", "question": "How many coins?",
                                "answer": 24, "match": "number"}) + "\n")
    return path


def test_bench_checks_the_local_sandbox_before_the_first_direct_episode(tmp_path):
    suite, out = one_task_suite(tmp_path), tmp_path / "out"
    home = tmp_path / "home"  # no library environment set up here
    with ScriptedGemini([reply.text("24")]) as server:
        env = {"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url, "AGENTIC_VISION_HOME": str(home)}
        args = ("bench", "--suite", str(suite), "--modes", "direct,local", "--sandbox", "local", "--out", str(out))
        first = run(*args, env=env)
        assert (first.returncode, first.stderr) == (3, SETUP_LINE)
        assert server.requests == []  # no direct episode was paid for
        assert not (out / "results.jsonl").exists()
        second = run(*args, env=env)  # the same command again: the same line, not "already holds results"
    assert (second.returncode, second.stderr) == (3, SETUP_LINE)


def test_serve_refuses_to_listen_without_a_usable_local_sandbox(tmp_path):
    result = run("serve", "--sandbox", "local", "--port", "0", env={"AGENTIC_VISION_HOME": str(tmp_path)}, timeout=60)
    assert (result.returncode, result.stderr) == (3, SETUP_LINE)


# -- sandbox setup: one at a time, and a disk that is too small --------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs, mounted for the test (root only): a real full disk."""
    with mounted_tmpfs(tmp_path / "small", "size=8m") as where:
        yield where


def test_a_second_setup_waits_for_the_first_and_says_so(tmp_path):
    env = tmp_path / "sandbox-env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / STAMP).write_text(requirements_hash())  # what the first setup will have left
    with open(tmp_path / "sandbox-env.lock", "w+") as held:  # the first setup, still building
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(str(os.getpid()))
        held.flush()
        proc = subprocess.Popen([sys.executable, "-m", "agentic_vision", "sandbox", "setup"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "AGENTIC_VISION_HOME": str(tmp_path)})
        try:
            first = proc.stderr.readline()
            time.sleep(0.5)
            assert proc.poll() is None  # still waiting
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    _, rest = proc.communicate(timeout=60)
    assert first == (f"another 'agentic-vision sandbox setup' (pid {os.getpid()}) is building {env}: "
                     "waiting for it to finish\n")
    assert (proc.returncode, rest) == (0, f"sandbox environment is up to date: {env}\n")


def test_setup_on_a_small_disk_says_how_much_it_needs_before_building(small_disk):
    result = run("sandbox", "setup", env={"AGENTIC_VISION_HOME": str(small_disk)}, timeout=60)
    assert result.returncode == 3
    assert result.stderr == (f"agentic-vision: not enough disk space for the sandbox environment: it needs about "
                             f"4.0 GB in {small_disk}, which has 8 MB free; free some space, or set "
                             "AGENTIC_VISION_HOME to a folder on a larger disk\n")
    assert not (small_disk / "sandbox-env").exists()


def test_a_disk_that_fills_up_during_setup_is_named_and_the_partial_environment_removed(small_disk, monkeypatch):
    monkeypatch.setattr(environment, "NEEDED_BYTES", 0)  # the size check passes; the disk still fills up
    env = small_disk / "sandbox-env"
    with pytest.raises(SandboxUnavailable) as caught:
        environment.build_env(env=env, echo=lambda line: None)
    message = str(caught.value)
    assert message.startswith(f"no space left on the device while installing pip into it in {env} ")
    assert message.endswith("; the partial environment was removed; free some space, or set AGENTIC_VISION_HOME "
                            "to a folder on a larger disk")
    assert not env.exists()
    assert shutil.disk_usage(small_disk).free > 7 * 10**6  # what the failed step wrote is gone


def test_a_second_bench_into_the_same_out_is_one_line_naming_the_first(tmp_path):
    suite, out = one_task_suite(tmp_path), tmp_path / "out"
    out.mkdir()
    with open(out / ".bench.lock", "w+") as held, ScriptedGemini([reply.text("24")]) as server:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first run, still going
        held.write(str(os.getpid()))
        held.flush()
        result = run("bench", "--suite", str(suite), "--modes", "direct", "--out", str(out),
                     env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
    assert result.returncode == 2
    assert result.stderr == (f"agentic-vision: another bench run (pid {os.getpid()}) is writing to {out}: wait for it "
                             "to finish, or choose another --out\n")
    assert server.requests == [] and sorted(p.name for p in out.iterdir()) == [".bench.lock"]


# -- output paths: checked before the work whose results they hold -------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder on a read-only mount (root only: permissions do not stop root)."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as where:
        yield where


def test_exec_in_a_read_only_folder_refuses_before_running_the_code(read_only_dir):
    code = "from PIL import Image\nprint('ran')\nImage.new('RGB', (8, 8)).show()"
    result = run("exec", code, cwd=read_only_dir, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"agentic-vision: --out agentic-vision-out: cannot write in {read_only_dir} (Read-only "
                             "file system); choose another folder\n")


def test_a_trace_in_a_missing_folder_is_refused_not_made(tmp_path):
    trace = tmp_path / "nonexistent" / "dir" / "t.html"
    with ScriptedGemini([reply.text("24")]) as server:
        result = run("ask", str(sample("coins.png")), "How many?", "--trace", str(trace),
                     env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": server.url})
    assert result.returncode == 2
    assert result.stderr == (f"agentic-vision: --trace {trace}: the folder {trace.parent} does not exist; "
                             "create it or choose another path\n")
    assert server.requests == [] and not (tmp_path / "nonexistent").exists()
