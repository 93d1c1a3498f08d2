"""The dedicated environment the local sandbox runs: Gemini's library list.

Kept apart from the environment agentic-vision itself runs in, so that what
the model can import is exactly the pinned list (plus RestrictedPython for
the guard), and rebuilt only when that list changes.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import click

from ..errors import SandboxUnavailable
from ..locking import exclusive
from .runtime_files import requirements_file
from ..paths import sandbox_env_dir

STAMP = "agentic-vision-requirements.sha256"
# The list installs to about 2.9 GB; pip's downloads and unpacking need room beside it.
NEEDED_BYTES = 4 * 10**9
MOVE_HINT = "free some space, or set AGENTIC_VISION_HOME to a folder on a larger disk"


def requirements_hash() -> str:
    return hashlib.sha256(requirements_file().read_bytes()).hexdigest()


def env_is_current(env: Path | None = None) -> bool:
    env = env or sandbox_env_dir()
    stamp = env / STAMP
    return (env / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == requirements_hash()


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 10**8 else f"{n / 1e6:.0f} MB"


def build_env(python: str | None = None, env: Path | None = None, echo=click.echo,
              on_pip_line: Callable[[str], None] | None = None, requirements: Path | None = None) -> Path:
    """Builds the environment (once; again when the library list changed), one build at a
    time per location: a second caller waits for the first (saying so) and then finds the
    environment ready.

    pip's output goes straight to the terminal, or, with ``on_pip_line``, to it line by line
    (for a progress display); a failure quotes pip's last lines.  ``requirements`` replaces
    the pinned list (tests install a wheel)."""
    env = env or sandbox_env_dir()
    try:
        env.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot make {env.parent}: {exc.strerror}; {MOVE_HINT}") from None
    waiting = lambda pid: echo(  # noqa: E731
        f"another 'agentic-vision sandbox setup' (pid {pid or '?'}) is building {env}: waiting for it to finish")
    with exclusive(env.parent / f"{env.name}.lock", waiting):
        if requirements is None and env_is_current(env):
            echo(f"sandbox environment is up to date: {env}")
            return env
        # Built in place (venvs hard-code their location); the stamp is written
        # last, so a half-built environment is never taken for a ready one.
        shutil.rmtree(env, ignore_errors=True)
        free = shutil.disk_usage(env.parent).free
        if free < NEEDED_BYTES and requirements is None:
            raise SandboxUnavailable(f"not enough disk space for the sandbox environment: it needs about "
                                     f"{_gb(NEEDED_BYTES)} in {env.parent}, which has {_gb(free)} free; {MOVE_HINT}")
        try:
            _build(python, env, echo, on_pip_line, requirements)
        except BaseException:  # a failure, Ctrl-C: no partial environment left filling the disk
            shutil.rmtree(env, ignore_errors=True)
            raise
    echo(f"sandbox environment ready: {env} ({directory_size(env) / 2**30:.1f} GiB)")
    return env


def _build(python: str | None, env: Path, echo, on_pip_line, requirements: Path | None) -> None:
    base = python or getattr(sys, "_base_executable", sys.executable)
    echo(f"creating the sandbox environment in {env} (with {base})")
    py = str(env / "bin" / "python")
    steps = [
        # venv runs ensurepip with its output captured (a failure there says only "returned
        # non-zero exit status"); run on its own, pip's own words reach the user.
        ("creating the virtual environment", [base, "-m", "venv", "--without-pip", str(env)]),
        ("installing pip into it", [py, "-m", "ensurepip", "--upgrade", "--default-pip"]),
        ("installing the libraries", [py, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                                      "--progress-bar", "off" if on_pip_line else "on",
                                      "-r", str(requirements or requirements_file())]),
    ]
    for what, argv in steps:
        tail = _run_teeing_stderr(argv) if on_pip_line is None else _run_reading(argv, on_pip_line)
        if tail is None:
            continue
        if _out_of_space(tail, env):
            raise SandboxUnavailable(f"no space left on the device while {what} in {env} (the environment needs "
                                     f"about {_gb(NEEDED_BYTES)}); the partial environment was removed; {MOVE_HINT}")
        last = next((line.strip() for line in reversed(tail) if line.strip().startswith("ERROR")), "") or \
            next((line.strip() for line in reversed(tail) if line.strip()), "")
        raise SandboxUnavailable(f"building the sandbox environment failed while {what}"
                                 + (f" ({last[:200]})" if last else "")
                                 + "; the partial environment was removed; fix that and run "
                                   "'agentic-vision sandbox setup' again (-v shows pip's log)")
    if requirements is None:  # another list is not the pinned one
        (env / STAMP).write_text(requirements_hash())


def _run_teeing_stderr(argv: list[str]) -> list[str] | None:
    """Runs a step with its stderr passed on as it comes; None when it succeeds, else the
    last lines of its stderr (to tell a full disk from other failures)."""
    try:
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace")
    except OSError as exc:
        return [f"{argv[0]}: {exc.strerror}"]
    tail: collections.deque[str] = collections.deque(maxlen=60)
    with proc:
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line)
    return None if proc.returncode == 0 else list(tail)


def _run_reading(argv: list[str], on_line: Callable[[str], None]) -> list[str] | None:
    """Runs a step, handing each line of its output to ``on_line``; None when it succeeds,
    else its last lines."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, bufsize=1, errors="replace")
    except OSError as exc:
        return [f"{argv[0]}: {exc.strerror}"]
    tail: collections.deque[str] = collections.deque(maxlen=60)
    with proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            on_line(line)
    return None if proc.returncode == 0 else list(tail)


def _out_of_space(tail: list[str], env: Path) -> bool:
    said = any("No space left on device" in line or f"[Errno {errno.ENOSPC}]" in line for line in tail)
    try:
        return said or shutil.disk_usage(env.parent).free < 10**6
    except OSError:
        return said


def directory_size(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total
