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


def build_env(python: str | None = None, env: Path | None = None, echo=click.echo) -> Path:
    env = env or sandbox_env_dir()
    if env_is_current(env):
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
         "-r", str(requirements_file())],
    ]
    for argv in steps:
        # pip's own progress goes straight to the terminal.
        if subprocess.run(argv).returncode != 0:
            raise SandboxUnavailable("building the sandbox environment failed (see pip's output above); "
                                     "fix that and run 'agentic-vision sandbox setup' again")
    (env / STAMP).write_text(requirements_hash())
    echo(f"sandbox environment ready: {env}")
    return env
