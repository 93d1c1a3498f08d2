"""The folders of matplotlib's prebuilt font list (one per sandbox interpreter), kept tidy."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import SandboxUnavailable
from ..paths import state_dir

SEED_NAME = re.compile(r"[0-9a-f]{16}")


STRAY_SEED_AGE = 3600.0


def sweep_stray_seeds(seeds: Path) -> None:
    """Removes seed folders not named by a digest (the old hash()-named ones),
    once they are an hour old: a running older version may still bind its own."""
    try:
        entries = list(seeds.iterdir())
    except OSError:
        return
    for entry in entries:
        if SEED_NAME.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            if time.time() - entry.stat().st_mtime > STRAY_SEED_AGE:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass


def matplotlib_seed(python: Path, launcher, start) -> Path | None:
    """Builds matplotlib's font list once, inside a sandbox, for later sessions to copy.

    The folder is named by a digest of the interpreter's path (stable
    across processes, unlike hash()); folders of the old per-process
    naming are removed on the way.  ``start(extra_binds=, code=)`` starts a sandbox
    running ``code`` (LocalExecutor._start)."""
    seeds = state_dir() / "matplotlib"
    sweep_stray_seeds(seeds)
    seed = seeds / hashlib.sha256(str(python.resolve()).encode()).hexdigest()[:16]
    if any(seed.glob("fontlist-*.json")):
        return seed
    # Built in a private folder the sandbox user may write, then handed back
    # to this user and renamed into place: later sandboxes only read it.
    seeds.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=seeds))
    try:
        build.chmod(0o755)
        launcher.chown_for_sandbox(build)
        worker = start(extra_binds=[(str(build), "/tmp/matplotlib", True)], code="import matplotlib.pyplot")
        try:
            worker.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            pass
        worker.kill()
        launcher.chown_back(build)
        if any(build.glob("fontlist-*.json")):
            try:
                os.rename(build, seed)
            except OSError:  # another process was first: its seed is as good
                pass
    except (OSError, SandboxUnavailable):
        pass
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return seed if any(seed.glob("fontlist-*.json")) else None
