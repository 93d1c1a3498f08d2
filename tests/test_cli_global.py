"""The command line's global flags: help with no arguments, -V, -v/-q/--log-level, completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "agentic_vision", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=180)


def test_no_arguments_prints_the_help_and_succeeds():
    result = cli()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ") and "Commands:" in result.stdout and "exec" in result.stdout
    assert result.stderr == ""


def test_version_short_and_long():
    from agentic_vision import __version__

    for flag in ("-V", "--version"):
        result = cli(flag)
        assert result.returncode == 0 and result.stdout.strip().endswith(__version__)


def test_verbose_logs_the_sandbox_and_quiet_silences_the_progress(tmp_path):
    plain = cli("exec", "--sandbox", "local", "--out", str(tmp_path), "print(6 * 7)")
    assert plain.stdout == "42\n" and "INFO" not in plain.stderr and "sandbox: local" in plain.stderr
    verbose = cli("-v", "exec", "--sandbox", "local", "--out", str(tmp_path), "print(6 * 7)")
    assert verbose.stdout == "42\n"
    assert "INFO agentic_vision.sandboxing.session: local sandbox ready" in verbose.stderr
    assert "DEBUG" not in verbose.stderr
    debug = cli("--log-level", "debug", "exec", "--sandbox", "local", "--out", str(tmp_path), "print(6 * 7)")
    assert "DEBUG agentic_vision.sandboxing.session: run ended OUTCOME_OK" in debug.stderr
    from_env = cli("exec", "--sandbox", "local", "--out", str(tmp_path), "print(6 * 7)",
                   env={"AGENTIC_VISION_LOG_LEVEL": "info"})
    assert "local sandbox ready" in from_env.stderr
    quiet = cli("-q", "exec", "--sandbox", "local", "--out", str(tmp_path), "print(6 * 7)")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "42\n", "")


def test_verbose_and_quiet_together_is_a_usage_error():
    result = cli("-v", "-q", "exec", "print(1)")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "-v and -q" in result.stderr


def test_shell_completion_as_the_readme_says():
    command = str(Path(sys.executable).parent / "agentic-vision")  # the installed entry point
    script = subprocess.run([command], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "_AGENTIC_VISION_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "complete -o nosort -F _agentic_vision_completion agentic-vision" in script.stdout
    words = subprocess.run([command], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "_AGENTIC_VISION_COMPLETE": "bash_complete",
                                "COMP_WORDS": "agentic-vision sa", "COMP_CWORD": "1"})
    assert "sandbox" in words.stdout
