"""`agentic-vision exec`: the contract of its output and exit status."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import png_size


def cli(*args, input=None, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "agentic_vision", *args],
        input=input, capture_output=True, text=True, env=env, cwd=cwd, timeout=180,
    )


def test_exec_crops_an_input_and_writes_the_image(photo, tmp_path):
    out = tmp_path / "out"
    code = "from PIL import Image\nimg = Image.open('photo.jpg')\nprint(img.size)\nimg.crop((0, 0, 120, 80)).save('crop.png')"
    result = cli("exec", "--input", str(photo), "--out", str(out), "--json", code)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outcome"] == "OUTCOME_OK"
    assert data["output"] == "(640, 427)\n"
    assert isinstance(data["duration_ms"], float)
    [image] = data["images"]
    assert image["mime_type"] == "image/png" and (image["width"], image["height"]) == (120, 80)
    assert image["source"] == {"input": "photo.jpg", "box": [0, 0, 120, 80], "angle": 0.0, "how": "tracked", "score": 1.0}
    assert png_size(Path(image["path"]).read_bytes()) == (120, 80)
    assert Path(image["path"]).parent == out


def test_exec_plain_output_and_code_from_stdin(tmp_path):
    result = cli("exec", "--out", str(tmp_path), "-", input="print('from stdin')\n")
    assert (result.returncode, result.stdout) == (0, "from stdin\n")


def test_failed_code_exits_1_with_the_traceback_on_stdout(tmp_path):
    result = cli("exec", "--out", str(tmp_path), "raise ValueError('bad pixel')")
    assert result.returncode == 1
    assert "ValueError: bad pixel" in result.stdout
    chosen, outcome = result.stderr.strip().splitlines()
    assert chosen in ("sandbox: local", "sandbox: docker")  # auto, as for ask
    assert outcome == "agentic-vision: OUTCOME_FAILED"


def test_timeout_exits_1_and_says_so(tmp_path):
    result = cli("exec", "--timeout", "1", "--json", "--out", str(tmp_path), "while True: pass")
    assert result.returncode == 1
    assert json.loads(result.stdout)["outcome"] == "OUTCOME_DEADLINE_EXCEEDED"


def test_guard_refusal_is_a_failed_run(tmp_path):
    result = cli("exec", "--json", "--out", str(tmp_path), "import ctypes")
    assert result.returncode == 1
    assert "import of 'ctypes' is not allowed in this sandbox" in json.loads(result.stdout)["output"]


def test_missing_input_is_a_usage_error_in_one_line(tmp_path):
    result = cli("exec", "--input", str(tmp_path / "nope.jpg"), "print(1)")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "input file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_is_a_usage_error_in_one_line():
    result = cli("exec", "--timeout", "soon", "print(1)")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--timeout" in result.stderr


def test_missing_bubblewrap_exits_3_with_how_to_install(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no bwrap on this PATH
    result = cli("exec", "--sandbox", "local", "print(1)", env=env)
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "agentic-vision: bubblewrap is not installed: run 'sudo apt-get install bubblewrap' (or use --sandbox docker)"
    )


def test_an_out_folder_that_cannot_be_made_is_one_line_before_the_code_runs(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    result = cli("exec", "--out", str(blocker / "images"), "print('ran')")
    assert (result.returncode, result.stdout) == (2, "")  # nothing ran
    assert result.stderr == (f"agentic-vision: --out {blocker / 'images'}: cannot make this folder ({blocker} is a "
                             "file); choose another folder\n")


def test_a_timeout_is_told_to_the_user_not_in_the_models_words(tmp_path):
    result = cli("exec", "--timeout", "1", "--out", str(tmp_path), "print('started', flush=True)\nwhile True: pass")
    assert (result.returncode, result.stdout) == (1, "started\n")
    assert result.stderr.splitlines()[-1] == ("agentic-vision: OUTCOME_DEADLINE_EXCEEDED: the code ran longer than "
                                              "--timeout 1 s and was stopped")
    assert "restarted" not in result.stdout + result.stderr and "variables" not in result.stdout + result.stderr
