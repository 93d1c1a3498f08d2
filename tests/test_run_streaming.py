"""Session.run(on_output=...) streams stdout/stderr as the code prints; a run's result
separates stdout, stderr and a structured error, on every sandbox kind."""

from __future__ import annotations

import time

import pytest

from agentic_vision import RunError

SLOW = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')"


def test_output_arrives_while_the_code_still_runs(open_sandbox):
    session = open_sandbox()
    seen = []
    started = time.monotonic()
    result = session.run(SLOW, on_output=lambda stream, text: seen.append((time.monotonic(), stream, text)))
    finished = time.monotonic()
    assert result.ok and result.stdout == "first\nsecond\n"
    assert "".join(text for _, _, text in seen) == "first\nsecond\n"
    assert {stream for _, stream, _ in seen} == {"stdout"}
    first_at = next(t for t, _, text in seen if "first" in text)
    # 'first' was handed over during the 2-second sleep, not with the result
    assert finished - first_at > 1.5, (first_at - started, finished - started)


def test_stdout_stderr_and_a_structured_error(open_sandbox):
    session = open_sandbox(guard=False)
    code = ("import os, sys\nprint('to out')\nprint('to err', file=sys.stderr)\nos.write(2, b'fd two\\n')\n"
            "os.write(1, b'fd one\\n')\nraise KeyError('missing')")
    streamed = []
    result = session.run(code, on_output=lambda stream, text: streamed.append((stream, text)))
    assert result.outcome == "OUTCOME_FAILED"
    assert result.stdout == "to out\nfd one\n"
    assert result.stderr.startswith("to err\nfd two\nTraceback (most recent call last):")
    assert isinstance(result.error, RunError)
    assert (result.error.name, result.error.value) == ("KeyError", "'missing'")
    assert result.error.traceback.endswith("KeyError: 'missing'\n") and 'line 6' in result.error.traceback
    # output keeps everything, in order, as the model sees it
    assert result.output.startswith("to out\nto err\n") and result.output.endswith("KeyError: 'missing'\n")
    assert "".join(t for s, t in streamed if s == "stdout") == result.stdout
    assert "".join(t for s, t in streamed if s == "stderr") == result.stderr


def test_a_successful_run_has_no_error_and_a_guard_refusal_is_one(open_sandbox):
    session = open_sandbox()
    assert session.run("print(1)").error is None
    refused = session.run("import ctypes")
    assert refused.error.name == "GuardError" and "ctypes" in refused.error.value
    syntax = session.run("def f(:")
    assert syntax.error.name == "SyntaxError" and syntax.stdout == ""


def test_a_timeout_is_an_error_and_keeps_what_was_printed(open_sandbox):
    session = open_sandbox(timeout=2)
    result = session.run("print('before', flush=True)\nwhile True: pass")
    assert result.outcome == "OUTCOME_DEADLINE_EXCEEDED"
    assert result.stdout == "before\n"
    assert result.error.name == "TimeoutError" and "2 s" in result.error.value


def test_a_callback_that_raises_stops_the_run_and_the_session_carries_on(open_sandbox):
    session = open_sandbox(timeout=20)

    def stop(stream, text):
        raise RuntimeError("enough")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="enough"):
        session.run("import time\nprint('go', flush=True)\ntime.sleep(15)", on_output=stop)
    assert time.monotonic() - started < 10  # not waited for
    after = session.run("print('again')")
    assert after.ok and after.stdout == "again\n"
    assert "stopped before it finished" in after.output
