"""How the local sandbox is started: as which host user, and seeing which files.

bubblewrap maps the sandbox's user to the uid that starts it, so a sandbox
started by root is host root inside its namespaces: it may write /proc/sys
(core_pattern runs a command as root outside every namespace) and reach
root's kernel keyring.  So root never runs bubblewrap.  A short launcher
script runs as root only to join the session's cgroups and to make the
sandbox's directories reachable, then drops to ``SANDBOX_UID`` (``nobody``
unless AGENTIC_VISION_SANDBOX_UID names a dedicated account) with setpriv
and execs bubblewrap; every process of the sandbox is that uid on the host.

Reachability: the sandbox's Python environment and runtime may live under
/root (mode 0700), which the sandbox uid cannot traverse, and bubblewrap
resolves its bind sources by path as its own user (``--ro-bind-fd`` too).
The launcher therefore runs in a private mount namespace (``unshare
--mount``) where each bind source is bind-mounted under a root-owned 0755
tmpfs at ``STAGE``; bubblewrap binds from there.  The host's mounts are not
touched.  Started by any other user, bubblewrap runs as that user directly.

bubblewrap's options arrive through ``--args FD``, so no host path shows in
the sandbox's /proc: its pid 1 (the broker, run with ``--as-pid-1``) has only
the command, in inside paths, in /proc/1/cmdline, and its environment is not
readable (the broker is not dumpable).
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

UID_SETTING = "AGENTIC_VISION_SANDBOX_UID"
NOBODY = 65534
STAGE = Path("/run/agentic-vision")

# $1.. = n, cgroup.procs files..., stage, m, sources..., then the command.
_ROOT_SCRIPT = r"""
n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); done
stage=$1; shift
mount -t tmpfs -o size=64k,mode=0755,nosuid,nodev,noexec agentic-vision-stage "$stage" || exit 96
m=$1; shift; i=0
while [ "$i" -lt "$m" ]; do
  mkdir "$stage/$i" && mount --bind "$1" "$stage/$i" || exit 96
  shift; i=$((i+1))
done
exec "$@"
"""
_USER_SCRIPT = r"""
n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); done
exec "$@"
"""


def sandbox_uid() -> tuple[int, int, str]:
    """(uid, gid, name) of the host account the sandbox runs as when root starts it."""
    text = os.environ.get(UID_SETTING, "").strip()
    uid = int(text) if text.isdigit() else (pwd.getpwnam(text).pw_uid if text else NOBODY)
    try:
        entry = pwd.getpwuid(uid)
        return uid, entry.pw_gid, entry.pw_name
    except KeyError:
        return uid, uid, f"uid {uid}"


@dataclass
class Launch:
    """The argv of one sandbox start and the fds it inherits (closed by ``close``)."""

    argv: list[str]
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


class Launcher:
    """Builds the command that starts bubblewrap with its arguments, as the right user."""

    def __init__(self, bwrap: str, *, drop: bool) -> None:
        self.bwrap = bwrap
        self.drop = drop
        self.uid, self.gid, self.user = sandbox_uid() if drop else (os.getuid(), os.getgid(), "the caller")
        if drop and self.uid == 0:
            raise ValueError(f"{UID_SETTING} must name an unprivileged account, not root")

    @property
    def describe(self) -> str:
        if self.drop:
            return f"host uid {self.uid} ({self.user}): root drops to it before bubblewrap"
        if os.geteuid() == 0:
            return "HOST ROOT (dropping privileges is switched off)"
        return f"host uid {self.uid} (the caller)"

    def stage(self, sources: list[str]) -> dict[str, str]:
        """Host path -> the path bubblewrap reads it from."""
        if not self.drop:
            return {s: s for s in sources}
        return {s: str(STAGE / str(i)) for i, s in enumerate(sources)}

    def launch(self, bwrap_args: list[str], procs_files: list[str], sources: list[str], fds: list[int]) -> Launch:
        """The full argv; ``sources`` in the order given to ``stage``; ``fds`` go to bubblewrap."""
        # The options go through the fd; the command (inside paths only) must stay on the command line.
        split = bwrap_args.index("--")
        options, command = bwrap_args[:split], bwrap_args[split:]
        args_fd = os.memfd_create("agentic-vision-bwrap-args", os.MFD_CLOEXEC)
        os.write(args_fd, b"".join(a.encode() + b"\0" for a in options))
        os.lseek(args_fd, 0, os.SEEK_SET)
        # env -i: bubblewrap (and so /proc/1/environ inside) gets no environment at all.
        bwrap = ["/usr/bin/env", "-i", self.bwrap, "--args", str(args_fd), *command]
        if not self.drop:
            argv = ["/bin/sh", "-c", _USER_SCRIPT, "sh", str(len(procs_files)), *procs_files, *bwrap]
            return Launch(argv, [args_fd, *fds])
        setpriv = [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]
        argv = [
            shutil.which("unshare") or "unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", _ROOT_SCRIPT, "sh",
            str(len(procs_files)), *procs_files, str(STAGE), str(len(sources)), *sources,
            *setpriv, *bwrap,
        ]
        return Launch(argv, [args_fd, *fds])

    def prepare(self) -> None:
        """Makes the staging mount point (empty on the host; only ever mounted over privately)."""
        if self.drop:
            STAGE.mkdir(mode=0o755, parents=True, exist_ok=True)

    def chown_for_sandbox(self, path: Path) -> None:
        """Lets the sandbox user write ``path`` (a folder the sandbox fills, e.g. the seed)."""
        if self.drop:
            os.chown(path, self.uid, self.gid)

    def chown_back(self, path: Path) -> None:
        if self.drop:
            for dirpath, dirs, files in os.walk(path):
                for name in [*dirs, *files]:
                    os.lchown(os.path.join(dirpath, name), os.getuid(), os.getgid())
            os.chown(path, os.getuid(), os.getgid())


@functools.lru_cache(maxsize=None)
def drop_problem(bwrap: str) -> str | None:
    """Why root cannot start bubblewrap as the sandbox uid here (one line), or None."""
    for tool in ("setpriv", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    uid, gid, _ = sandbox_uid()
    try:
        STAGE.mkdir(mode=0o755, parents=True, exist_ok=True)
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--",
             "/bin/sh", "-c", 'mount -t tmpfs -o size=4k x "$0" && exec "$@"', str(STAGE),
             "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
             bwrap, "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "--ro-bind", str(STAGE), "/mnt", "true"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {done.returncode}"
    return None
