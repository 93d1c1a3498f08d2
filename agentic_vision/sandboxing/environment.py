"""The dedicated environment the local sandbox runs: Gemini's library list.

Kept apart from the environment agentic-vision itself runs in, so that what
the model can import is exactly the pinned list (plus RestrictedPython for
the guard), and rebuilt only when that list changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import click

from ..errors import SandboxUnavailable
from .runtime_files import requirements_file
from ..paths import sandbox_env_dir

STAMP = "agentic-vision-requirements.sha256"


def requirements_hash() -> str:
    return hashlib.sha256(requirements_file().read_bytes()).hexdigest()


def env_is_current(env: Path | None = None) -> bool:
    env = env or sandbox_env_dir()
    stamp = env / STAMP
    return (env / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == requirements_hash()


def build_env(python: str | None = None, env: Path | None = None, echo=click.echo,
              on_pip_line: Callable[[str], None] | None = None, requirements: Path | None = None) -> Path:
    """Builds the environment (once; again when the library list changed).

    pip's output goes straight to the terminal, or, with ``on_pip_line``, to
    it line by line (for a progress display); then a failure quotes pip's last
    lines.  ``requirements`` replaces the pinned list (tests install a wheel).
    """
    env = env or sandbox_env_dir()
    if requirements is None and env_is_current(env):
        echo(f"sandbox environment is up to date: {env}")
        return env
    base = python or getattr(sys, "_base_executable", sys.executable)
    # Built in place (venvs hard-code their location); the stamp is written
    # last, so a half-built environment is never taken for a ready one.
    shutil.rmtree(env, ignore_errors=True)
    env.parent.mkdir(parents=True, exist_ok=True)
    echo(f"creating the sandbox environment in {env} (with {base})")
    steps = [
        [base, "-m", "venv", str(env)],
        [str(env / "bin" / "python"), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
         "--progress-bar", "off" if on_pip_line else "on", "-r", str(requirements or requirements_file())],
    ]
    for argv in steps:
        if on_pip_line is None:
            failed, why = subprocess.run(argv).returncode != 0, "see pip's output above"
        else:
            failed, tail = _run_reading(argv, on_pip_line)
            why = "pip said: " + " / ".join(tail[-3:]) if tail else "no output"
        if failed:
            raise SandboxUnavailable(f"building the sandbox environment failed ({why}); "
                                     "fix that and run 'agentic-vision sandbox setup' again (-v shows pip's log)")
    if requirements is None:  # another list is not the pinned one
        (env / STAMP).write_text(requirements_hash())
    echo(f"sandbox environment ready: {env} ({directory_size(env) / 2**30:.1f} GiB)")
    return env


def _run_reading(argv: list[str], on_line: Callable[[str], None]) -> tuple[bool, list[str]]:
    """Runs argv, handing each line of its output to ``on_line``; (failed, its last error lines)."""
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                          errors="replace") as proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.strip():
                tail = (tail + [line.strip()])[-20:]
            on_line(line)
    errors = [line for line in tail if line.startswith("ERROR")] or tail
    return proc.returncode != 0, errors


def directory_size(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total
