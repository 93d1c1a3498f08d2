"""The local sandbox: the runtime inside bubblewrap, with resource limits.

Each session gets its own bubblewrap sandbox: new user, pid, network, ipc
and uts namespaces; a read-only view of the system and of the Python it runs;
its own size-capped tmpfs for the working directory, /tmp and /dev/shm; a
read-only /dev and /proc/sys; no home, no host /tmp, no sockets, no host
processes, no environment from the host; a seccomp filter (seccomp.py); and,
when root starts it, an unprivileged host uid (launcher.py).
Ready sandboxes are kept in a small pool (each one imported numpy, PIL, cv2
and matplotlib already), so opening a session costs a hand-over, not a
start; no sandbox ever serves two sessions.
"""

from __future__ import annotations

import atexit
import logging
import concurrent.futures
import json
import os
import shutil
import socket
import threading
from typing import Sequence
from pathlib import Path

from ..errors import SandboxUnavailable
from .limits import CgroupFactory, Limits
from ..paths import sandbox_env_dir
from . import parser_jail, seccomp
from .launcher import Launch, Launcher, drop_problem
from .pool import PooledExecutor, WorkerPool
from .runtime_files import RUNTIME_DIR
from .worker import Worker
from .mpl_seed import matplotlib_seed
from .inside_paths import inside_paths, inside_python, interpreter_roots
from . import template as forking

log = logging.getLogger(__name__)
INSIDE_RUNTIME = "/opt/agentic-vision/sandbox"
INSIDE_MPL_SEED = "/opt/agentic-vision/mpl"
READY_TIMEOUT = 90.0
INSTALL_HINT = "bubblewrap is not installed: run 'sudo apt-get install bubblewrap' (or use --sandbox docker)"
WEAK_SETTING = "AGENTIC_VISION_ALLOW_WEAK_SANDBOX"


def weak_sandbox_allowed() -> bool:
    """The explicit opt-in to a local sandbox without seccomp or without dropping root."""
    return os.environ.get(WEAK_SETTING) == "1"

# Read-only pieces of /etc that libraries need; nothing else of the host's /etc.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime", "alternatives", "mime.types")


SETUP_HINT = ("the local sandbox's library environment is not set up: run 'agentic-vision sandbox setup' "
              "(once, a few minutes) or use --sandbox docker")


def sandbox_python() -> Path:
    """The interpreter that runs inside: the dedicated environment.

    Never the host's own interpreter as a fall-back: the model would be told
    of libraries that are not there (AGENTIC_VISION_SANDBOX_PYTHON chooses
    another one explicitly)."""
    override = os.environ.get("AGENTIC_VISION_SANDBOX_PYTHON")
    if override:
        return Path(override)
    env = sandbox_env_dir()
    if (env / "agentic-vision-requirements.sha256").exists():  # complete, see environment.build_env
        return env / "bin" / "python"
    raise SandboxUnavailable(SETUP_HINT)


def check_local_sandbox() -> None:
    """What a local sandbox needs before the first one starts (bubblewrap, the library
    environment), each a one-line SandboxUnavailable: servers and runs check it before
    they listen or spend work, not once per request or episode."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(INSTALL_HINT)
    forking.cold_start_setting()  # a bad AGENTIC_VISION_SANDBOX_START is one line now
    python = sandbox_python()
    if not python.exists():
        raise SandboxUnavailable(f"the sandbox interpreter {python} is missing: run 'agentic-vision sandbox setup'")


def bind_sources(python: Path, extra_binds=()) -> list[str]:
    """The host directories a sandbox binds besides the system ones, in a fixed order."""
    return [*interpreter_roots(str(python)), str(RUNTIME_DIR), *(source for source, _, _ in extra_binds)]


def bwrap_argv(
    bwrap: str,
    python: Path,
    limits: Limits,
    *,
    extra_env: dict | None = None,
    extra_binds: list[tuple[str, str, bool]] = (),
    seccomp_fd: int | None = None,
    sources: dict[str, str] | None = None,
    entry: Sequence[str] = (),
    template: bool = False,
) -> list[str]:
    """bubblewrap's command line; ``sources`` maps a host directory to the path
    bubblewrap reads it from (the launcher's staged copy when root drops);
    ``entry`` replaces the broker script (see LocalExecutor).  ``template``: the
    sandbox of the template that forks sessions (template.py), which makes each
    session's user namespace and procfs itself: it may make user namespaces, and
    its /proc has nothing mounted over it (the kernel mounts a new procfs only
    where one is fully visible); each session puts /proc/sys read-only again."""
    source = (sources or {}).get
    argv = [
        bwrap,
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try",
        "--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
        "--die-with-parent", "--new-session", "--clearenv", *([] if template else ["--disable-userns"]),
        # The broker is pid 1: bubblewrap's own init would keep the host
        # channel open where model code can reach it (/proc/1/fd/1).
        "--as-pid-1",
        "--cap-drop", "ALL",
        # The sandbox's own procfs, with /proc/sys read-only over it (bubblewrap
        # covers it only when the sandbox could write it).
        "--proc", "/proc", *([] if template else ["--ro-bind", "/proc/sys", "/proc/sys"]),
        # /dev read-only but for a size-capped /dev/shm (a tmpfs: counted by the memory cgroup).
        "--dev", "/dev", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
    ]
    for top in ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    mapping = inside_paths(interpreter_roots(str(python)))
    for root, inside in mapping.items():
        argv += ["--ro-bind", source(root, root), inside]
    argv += ["--ro-bind", source(str(RUNTIME_DIR), str(RUNTIME_DIR)), INSIDE_RUNTIME]
    argv += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    argv += ["--size", str(limits.workdir_bytes), "--perms", "0755", "--tmpfs", "/work"]
    for host, target, writable in extra_binds:
        argv += ["--bind" if writable else "--ro-bind", source(host, host), target]
    argv += ["--remount-ro", "/", "--chdir", "/work"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # TensorFlow would otherwise greet every import with GPU and oneDNN notices.
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.update(extra_env or {})
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--", inside_python(python, mapping), "-E", "-s", "-u", *(entry or [f"{INSIDE_RUNTIME}/broker.py"])]
    return argv


class LocalExecutor(PooledExecutor):
    kind = "local"

    def __init__(
        self,
        limits: Limits | None = None,
        pool_size: int = 1,
        python: str | os.PathLike | None = None,
        entry: Sequence[str] = (),
        start: str | None = None,
    ) -> None:
        """``entry``: arguments for the sandbox's Python in place of the broker script,
        e.g. ``("-c", source)``; the test suite runs hostile runtimes this way to
        check the host's own defences.  ``start``: "template" (sessions forked from a
        template sandbox) or "cold" (a bubblewrap and a Python each); by default
        AGENTIC_VISION_SANDBOX_START, else "template"."""
        self.entry = tuple(entry)
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None:
            raise SandboxUnavailable(INSTALL_HINT)
        self.limits = limits or Limits()
        self.pool_size = pool_size
        self.python = Path(python) if python else sandbox_python()
        if not self.python.exists():
            raise SandboxUnavailable(f"the sandbox interpreter {self.python} is missing: run 'agentic-vision sandbox setup'")
        try:
            seccomp.bpf_for_bwrap()
            self.seccomp = True
        except seccomp.SeccompUnavailable as exc:
            if not weak_sandbox_allowed():
                raise SandboxUnavailable(
                    f"the local sandbox needs a seccomp filter but {exc}: install libseccomp2 and pyseccomp "
                    f"(scripts/bootstrap.sh), use --sandbox docker, or set {WEAK_SETTING}=1 to run without it"
                ) from None
            self.seccomp = False
        self.launcher = self._launcher()
        self.cgroups = CgroupFactory()
        self.cgroups.sweep()
        self.pool = WorkerPool(self.spawn, pool_size, "sandbox-pool", parallel=2)
        # bubblewrap's --die-with-parent is bound to the *thread* that started it
        # (PR_SET_PDEATHSIG), so every sandbox is started from one long-lived
        # thread: a sandbox started from a short-lived one would die with it.
        self._spawner = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")
        self._mpl_seed = matplotlib_seed(self.python, self.launcher, self._start)
        self._template: forking.Template | None = None
        self._template_lock = threading.Lock()
        # Why sessions start cold, if they do (None: forked from the template).
        self._template_problem: str | None = forking.cold_start_setting(start)
        atexit.register(self.shutdown)

    def _launcher(self) -> Launcher:
        """Root drops to an unprivileged uid before bubblewrap, or the sandbox is refused."""
        if os.geteuid() != 0:
            return Launcher(self.bwrap, drop=False)
        try:
            launcher = Launcher(self.bwrap, drop=True)
        except (ValueError, KeyError) as exc:
            raise SandboxUnavailable(f"the local sandbox cannot drop root: {exc}") from None
        problem = drop_problem(self.bwrap)
        if problem is None:
            launcher.prepare()
            return launcher
        if weak_sandbox_allowed():
            return Launcher(self.bwrap, drop=False)
        raise SandboxUnavailable(
            f"the local sandbox would run as host root ({problem}): use --sandbox docker, allow unprivileged "
            f"user namespaces, or set {WEAK_SETTING}=1 to accept the weaker sandbox"
        )

    @property
    def cache_key(self) -> str:
        """Changes whenever what is installed for the sandbox may have changed."""
        stamp = self.python.parent.parent / "agentic-vision-requirements.sha256"
        site = [p for p in self.python.parent.parent.glob("lib/python*/site-packages")]
        mtimes = ",".join(str(p.stat().st_mtime_ns) for p in site)
        return f"local|{self.python}|{stamp.read_text() if stamp.exists() else ''}|{mtimes}"

    @property
    def enforcement(self) -> dict:
        """Which mechanism holds each limit, for `sandbox info` and the docs."""
        via = f"cgroup {self.cgroups.mode}" if self.cgroups.available else None
        as_root = os.geteuid() == 0 and not self.launcher.drop
        mib = lambda n: f"{n // 2**20} MiB"  # noqa: E731
        lim = self.limits
        cpu = (
            f"cgroup {self.cgroups.mode} ({self.cgroups.cpu_setting(lim)})"
            if self.cgroups.cpu
            else "not limited per session: no cpu cgroup here (a run's timeout still ends it)"
        )
        tmpfs = f"tmpfs: /work {mib(lim.workdir_bytes)}, /tmp {mib(lim.tmp_bytes)}, /dev/shm {mib(lim.shm_bytes)}"
        return {
            "host user": self.launcher.describe,
            "memory": via or "rlimit (RLIMIT_DATA, per process)",
            "processes": via or ("not enforced: rlimits do not bind root" if as_root else "rlimit (RLIMIT_NPROC)"),
            "cpu": cpu,
            "file size": "rlimit (RLIMIT_FSIZE)",
            "open files": "rlimit (RLIMIT_NOFILE)",
            "memory folders": tmpfs + (", counted in the memory cgroup" if via else ", each capped, not in RLIMIT_DATA"),
            "working directory": f"tmpfs of {mib(lim.workdir_bytes)}",
            "system calls": seccomp.describe() if self.seccomp else f"NOT FILTERED ({WEAK_SETTING}=1)",
            "/proc/sys, /dev": "read-only",
            "session start": (f"cold ({self._template_problem})" if self._template_problem
                              else "forked from a template sandbox with the libraries imported"),
            # PDFs given as inputs are rendered on the host, in a jailed child, not in this sandbox.
            "pdf renderer": parser_jail.describe_limits(),
        }

    def spawn(self) -> Worker:
        """A new sandbox with a ready runtime: forked from the template, or a cold start
        where there is none (``entry``, AGENTIC_VISION_SANDBOX_START=cold, or it cannot run here)."""
        if self.entry or self._template_problem is not None:
            return self._cold_spawn()
        try:
            return self._forked_spawn()
        except forking.TemplateUnavailable as exc:
            self._template_problem = str(exc)
            log.warning("local sessions start cold (about half a second each): %s", exc)
            return self._cold_spawn()

    def _forked_spawn(self) -> Worker:
        """A session from the template; a template that fails one is replaced once (it may
        have died: sessions go with it), a new one that fails means it cannot run here."""
        retried = False
        while True:
            template, new = self._template_now()
            cgroup = self.cgroups.create(self.limits)
            try:
                worker = template.fork(forking.session_request(self.limits, cgroup), cgroup, READY_TIMEOUT)
            except BaseException as exc:
                if cgroup is not None:
                    cgroup.remove()
                if not isinstance(exc, forking.TemplateUnavailable) or new or retried:
                    raise
                retried = True
                self._drop_template(template)
                continue
            worker.wait_ready(READY_TIMEOUT)
            return worker

    def _template_now(self) -> tuple[forking.Template, bool]:
        """The running template, and whether it was started just now (when there was none)."""
        with self._template_lock:
            if self._template is not None and self._template.alive:
                return self._template, False
            if self._template is not None:
                self._template.kill()
            self._template = None
            template = self._spawner.submit(self._start_template).result()
            template.wait_ready(READY_TIMEOUT)
            self._template = template
            return template, True

    @property
    def template_pid(self) -> int | None:
        """The host pid of the running template's sandbox (its bubblewrap), if one runs."""
        template = self._template
        return template.pid if template is not None and template.alive else None

    def _drop_template(self, template: forking.Template) -> None:
        with self._template_lock:
            if self._template is template:
                self._template = None
        template.kill()

    def _start_template(self) -> forking.Template:
        """The template's bubblewrap (see sandbox/template.py), given its control socket
        and the seccomp filter it loads into each session."""
        control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = [theirs.detach(), seccomp.bpf_fd() if self.seccomp else -1]
        launch = self._bubblewrap(
            extra_binds=self._mpl_binds(), extra_env=self._mpl_env(), template=True,
            entry=[f"{INSIDE_RUNTIME}/template.py", *map(str, fds)], fds=[fd for fd in fds if fd >= 0],
        )
        try:
            return forking.Template(launch.argv, launch.fds, control, self.launcher.uid)
        except BaseException:
            control.close()
            raise
        finally:
            launch.close()

    def _cold_spawn(self) -> Worker:
        worker = self._spawner.submit(self._launch).result()
        try:
            worker.wait_ready(READY_TIMEOUT)
        except SandboxUnavailable as exc:
            worker.kill()
            raise SandboxUnavailable(f"{exc} (bubblewrap needs user namespaces: check 'bwrap --ro-bind / / true')") from None
        return worker

    def _mpl_binds(self) -> list:
        return [] if self._mpl_seed is None else [(str(self._mpl_seed), INSIDE_MPL_SEED, False)]

    def _mpl_env(self) -> dict:
        return {} if self._mpl_seed is None else {"AGENTIC_VISION_MPL_SEED": INSIDE_MPL_SEED}

    def _launch(self) -> Worker:
        cgroup = self.cgroups.create(self.limits)
        rlimits = forking.session_request(self.limits, cgroup)["rlimits"]
        env = {"AGENTIC_VISION_RLIMITS": json.dumps(rlimits), **self._mpl_env()}
        binds = self._mpl_binds()
        try:
            return self._start(extra_binds=binds, extra_env=env, cgroup=cgroup)
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise

    def _start(self, *, extra_binds, extra_env=None, cgroup=None, code: str | None = None) -> Worker:
        """Starts bubblewrap through the launcher: the runtime, or ``python -c code``."""
        filter_fd = seccomp.bpf_fd() if self.seccomp else None
        launch = self._bubblewrap(
            extra_binds=extra_binds, extra_env=extra_env, seccomp_fd=filter_fd, entry=self.entry, code=code,
            procs_files=cgroup.procs_files if cgroup else [], fds=[] if filter_fd is None else [filter_fd],
        )
        try:
            return Worker(
                launch.argv,
                env={},
                on_kill=cgroup.remove if cgroup else None,
                describe="local sandbox",
                pass_fds=tuple(launch.fds),
            )
        finally:
            launch.close()

    def _bubblewrap(self, *, extra_binds, extra_env, fds: list[int], entry: Sequence[str] = (),
                    procs_files: list[str] = (), seccomp_fd: int | None = None, template: bool = False,
                    code: str | None = None) -> Launch:
        """The launcher's command for one bubblewrap (a session's or the template's): its
        arguments (see bwrap_argv), the cgroups it joins, the fds it inherits."""
        sources = bind_sources(self.python, extra_binds)
        argv = bwrap_argv(
            self.bwrap, self.python, self.limits, extra_env=extra_env, extra_binds=extra_binds,
            seccomp_fd=seccomp_fd, sources=self.launcher.stage(sources), entry=entry, template=template,
        )
        if code is not None:
            argv = argv[: argv.index("--") + 2] + ["-E", "-s", "-c", code]
        return self.launcher.launch(argv[1:], list(procs_files), sources, fds)

    def shutdown(self) -> None:
        for worker in self.pool.close():
            worker.kill()
        with self._template_lock:
            if self._template is not None:
                self._template.kill()
                self._template = None
