"""Which host files a client may hand to the sandbox, and reading them safely.

A client names host paths; only regular files under an allowed directory
are read.  Symlinks and ``..`` are resolved before the check, and the file
actually opened is checked again through /proc, so a link swapped in between
cannot lead outside.  A hard link has no "real" path to resolve: a file with
more than one link may be a name inside for a file outside, so it is refused
unless the server was started with --allow-hardlinks.  The file opened must
be the very file checked (device and inode) and must not change while it is
read.  Every path of a request is checked before any is read: a refused
request reads nothing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ...errors import InputError
from ...sandboxing.session import MAX_INPUT_BYTES, InputFile


class AccessRefused(InputError):
    """A path the rules do not allow; the message is one line."""


HARDLINK = ("{path} has {links} hard links, and one may be a name here for a file outside the allowed "
            "directories, so it is not read (copy the file instead, or start the server with --allow-hardlinks)")


@dataclass(frozen=True)
class Checked:
    """A path the rules allowed, and the file (device, inode, size, times) it was then."""

    given: str
    real: Path
    stat: os.stat_result


class FileAccess:
    def __init__(self, allowed: Iterable[os.PathLike | str], allow_hardlinks: bool = False) -> None:
        self.allow_hardlinks = allow_hardlinks
        dirs = []
        for d in allowed:
            real = Path(os.path.realpath(d))
            if not real.is_dir():
                raise InputError(f"--allow-dir {d}: not a directory")
            dirs.append(real)
        if not dirs:
            raise InputError("at least one --allow-dir is needed")
        self.dirs = dirs

    def describe(self) -> str:
        return ", ".join(str(d) for d in self.dirs)

    def _inside(self, real: str) -> bool:
        return any(real == str(d) or real.startswith(str(d).rstrip("/") + "/") for d in self.dirs)

    def check(self, path: str) -> Checked:
        """The resolved path and the file it was when the rules allowed reading it; raises AccessRefused."""
        if not isinstance(path, str) or not path or "\0" in path:
            raise AccessRefused(f"{path!r} is not a usable path")
        given = Path(path)
        if not given.is_absolute():
            given = Path.cwd() / given  # relative paths are relative to where the server runs
        real = os.path.realpath(given)
        if not self._inside(real):
            raise AccessRefused(
                f"{path} is outside the allowed directories ({self.describe()}); "
                "the server's --allow-dir decides what it may read"
            )
        try:
            st = os.stat(real)
        except OSError:
            raise AccessRefused(f"{path}: no such file") from None
        if not stat.S_ISREG(st.st_mode):
            raise AccessRefused(f"{path} is not a regular file")
        if st.st_nlink > 1 and not self.allow_hardlinks:
            raise AccessRefused(HARDLINK.format(path=path, links=st.st_nlink))
        return Checked(path, Path(real), st)

    def read(self, paths: Iterable[str]) -> list[InputFile]:
        """Checks every path, then reads them; the sandbox sees each under its given name."""
        return self.read_checked([self.check(p) for p in paths])

    def read_checked(self, checked: list[Checked]) -> list[InputFile]:
        names = [Path(c.given).name for c in checked]
        if len(set(names)) != len(names):
            raise AccessRefused("two of the files have the same name; rename one")
        total = 0
        files = []
        for name, one in zip(names, checked):
            data = self._read_one(one, MAX_INPUT_BYTES - total)
            total += len(data)
            files.append(InputFile(name, data))
        return files

    def _read_one(self, checked: Checked, budget: int) -> bytes:
        # O_NOFOLLOW and O_NONBLOCK: a link or a FIFO swapped in after the check
        # is neither followed nor waited on; what was opened is checked again,
        # and must be the file that was checked, unchanged.
        given = checked.given
        try:
            fd = os.open(checked.real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise AccessRefused(f"{given}: cannot be read ({exc.strerror})") from None
        try:
            st = os.fstat(fd)
            opened = os.path.realpath(f"/proc/self/fd/{fd}")
            if not stat.S_ISREG(st.st_mode) or not self._inside(opened) or _identity(st) != _identity(checked.stat):
                raise AccessRefused(f"{given} changed while it was being checked; try again")
            if st.st_nlink > 1 and not self.allow_hardlinks:  # a link made since the check
                raise AccessRefused(HARDLINK.format(path=given, links=st.st_nlink))
            if _content(st) != _content(checked.stat):
                raise AccessRefused(f"{given} changed while it was being checked; try again")
            if st.st_size > budget:
                raise AccessRefused(f"the files exceed {MAX_INPUT_BYTES // 2**20} MiB in total")
            chunks, size = [], 0
            while chunk := os.read(fd, 1 << 20):
                size += len(chunk)
                if size > budget:
                    raise AccessRefused(f"the files exceed {MAX_INPUT_BYTES // 2**20} MiB in total")
                chunks.append(chunk)
            after = os.fstat(fd)
            if _content(after) != _content(st) or size != st.st_size:
                raise AccessRefused(f"{given} changed while it was being read; try again")
            return b"".join(chunks)
        finally:
            os.close(fd)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _content(st: os.stat_result) -> tuple[int, int, int]:
    # A write moves the modification time and the inode-change time; size catches a write
    # within the clock's resolution that grew or shrank the file.
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns
