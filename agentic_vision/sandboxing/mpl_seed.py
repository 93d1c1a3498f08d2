"""The folders of matplotlib's prebuilt font list (one per sandbox interpreter), kept tidy."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

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
