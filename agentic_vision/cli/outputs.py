"""Files and folders the user names for output (--out, --trace), checked before any work is
done: a run whose results cannot be written is a run wasted."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import InputError


def _probe(folder: Path, option: str, named: str) -> None:
    """Writes and removes a file in ``folder``: the only test that holds for root, read-only
    mounts and full disks alike (os.access says yes to root)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".agentic-vision-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        where = "" if str(folder) == named else f" in {folder.resolve()}"
        raise InputError(f"{option} {named}: cannot write{where} ({exc.strerror}); choose another folder") from None


def check_out_dir(path: str, option: str) -> Path:
    """The output folder, or the nearest folder above it that exists, takes files; nothing is
    made yet (a run that fails before it has output leaves no empty folder behind)."""
    folder = Path(path)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {folder}: cannot make this folder ({existing} is a file); choose another folder")
    _probe(existing, option, path)
    return folder


def check_out_file(path: str, option: str) -> None:
    """An output file's folder must exist already (a typo must not make a tree of folders)
    and be writable; the file itself must not be a folder."""
    target = Path(path)
    parent = target.parent
    if not parent.exists():
        raise InputError(f"{option} {path}: the folder {parent} does not exist; create it or choose another path")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, not a folder; choose another path")
    if target.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name")
    _probe(parent, option, path)
