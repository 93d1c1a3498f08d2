"""Tracebacks the model sees: its own frames and the library frames below, no runtime
frames, no host paths."""

from __future__ import annotations

import os
import sys

import pytest

from agentic_vision.paths import state_dir


def leaks(text: str) -> list[str]:
    host = [str(state_dir()), sys.prefix, os.path.expanduser("~"), os.getcwd()]
    found = [p for p in host if p and p != "/" and p in text]
    found += [w for w in ("runtime.py", "guard.py", "/opt/agentic-vision", "/site-packages/", "cached_open")
              if w in text]
    return found


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
def test_a_library_error_shows_the_models_line_and_the_library_frames(open_sandbox, photo, guard):
    session = open_sandbox(inputs=[photo], guard=guard)
    run = session.run("from PIL import Image\nimport numpy as np\n\n"
                      "def load(name):\n    return Image.open(name)\n\nload('missing.png')\n")
    assert run.outcome == "OUTCOME_FAILED"
    text = run.output
    assert text.startswith("Traceback (most recent call last):\n")
    assert 'File "<code>", line 7, in <module>' in text and "load('missing.png')" in text
    assert 'File "<code>", line 5, in load' in text
    assert 'File "PIL/Image.py"' in text  # the library frame, its path shortened
    assert text.rstrip().endswith("No such file or directory: 'missing.png'")
    assert leaks(text) == []


def test_an_error_inside_display_shows_no_runtime_frame(open_sandbox):
    session = open_sandbox()
    run = session.run("display({'not': 'an image'})")
    assert run.outcome == "OUTCOME_FAILED"
    assert "TypeError: display() cannot show a dict" in run.output
    assert leaks(run.output) == []


def test_a_standard_library_error_and_a_chained_one(open_sandbox):
    session = open_sandbox()
    run = session.run("import json\ntry:\n    json.loads('{')\nexcept ValueError as e:\n"
                      "    raise RuntimeError('bad config') from e\n")
    assert run.outcome == "OUTCOME_FAILED"
    assert 'json/decoder.py"' in run.output and "The above exception was the direct cause" in run.output
    assert "RuntimeError: bad config" in run.output
    assert leaks(run.output) == []
