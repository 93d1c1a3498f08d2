"""Attacks on the OS boundary, judged by their effects on the host, on both sandboxes.

The host process is root here (as in CI); test_attacks_unprivileged.py runs
the same attacks from a host process of an unprivileged user.  The guard is
off: the OS boundary must hold on its own.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import require
from session_host import children_of, session_root_pid  # noqa: F401  (test_attacks_unprivileged takes them from here)

SYSCTLS = ("kernel/core_pattern", "kernel/modprobe", "fs/lease-break-time", "vm/drop_caches", "kernel/sysrq")

# name -> (x86_64 number, aarch64 number, args); each must fail with EPERM.
PROBES = {
    "io_uring_setup": (425, 425, (1, 0)),
    "io_uring_register": (427, 427, (0, 0, 0, 0)),
    "userfaultfd": (323, 282, (0,)),
    "bpf": (321, 280, (0, 0, 0)),
    "perf_event_open": (298, 241, (0, 0, -1, -1, 0)),
    "ptrace_attach_1": (101, 117, (16, 1, 0, 0)),
    "process_vm_readv": (310, 270, (1, 0, 0, 0, 0, 0)),
    "kcmp": (312, 272, (1, 1, 0, 0, 0)),
    "keyctl_user_keyring": (250, 219, (0, -4, 0)),
    "add_key": (248, 217, ("user", "planted", "x", 1, -4)),
    "request_key": (249, 218, ("user", "planted", 0, 0)),
    "unshare_newuser": (272, 97, (0x10000000,)),
    "unshare_newns": (272, 97, (0x00020000,)),
    "unshare_newnet": (272, 97, (0x40000000,)),
    "setns": (308, 268, (0, 0)),
    "mount_tmpfs": (165, 40, ("none", "/tmp", "tmpfs", 0, 0)),
    "umount2": (166, 39, ("/proc", 2)),
    "pivot_root": (155, 41, ("/tmp", "/tmp")),
    "chroot": (161, 51, ("/tmp",)),
    "open_tree": (428, 428, (-100, "/", 1)),
    "fsopen": (430, 430, ("tmpfs", 0)),
    "init_module": (175, 105, (0, 0, "")),
    "kexec_load": (246, 104, (0, 0, 0, 0)),
    "personality_read_implies_exec": (135, 92, (0x0400000,)),
    "shmget": (29, 194, (0, 1 << 20, 0o1600)),
    "name_to_handle_at": (303, 264, (-100, "/", 0, 0, 0)),
    "pidfd_getfd": (438, 438, (0, 0, 0)),
    "syslog": (103, 116, (3, 0, 0)),
    "swapon": (167, 224, ("/tmp/x", 0)),
    "clock_settime": (227, 112, (0, 0)),
}
SOCKET_FAMILIES_DENIED = {"AF_VSOCK": 40, "AF_PACKET": 17, "AF_NETLINK": 16, "AF_ALG": 38, "AF_KEY": 15, "AF_BLUETOOTH": 31}

PROBE_CODE = """
import ctypes, errno, json, os, socket, platform
libc = ctypes.CDLL(None, use_errno=True)
arch = 0 if platform.machine() == "x86_64" else 1
def arg(a):
    return ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a)
out = {{}}
for name, spec in {probes!r}.items():
    r = libc.syscall(ctypes.c_long(spec[arch]), *[arg(a) for a in spec[2]])
    e = ctypes.get_errno()
    if r == 0 and name.startswith("clone"):
        os._exit(0)
    out[name] = "ok" if r != -1 else errno.errorcode.get(e, str(e))
# clone with new-namespace flags (a raw fork-like clone: a child that got through exits at once)
for flag, name in ((0x10000000, "clone_newuser"), (0x20000000, "clone_newpid"), (0x40000000, "clone_newnet")):
    r = libc.syscall(ctypes.c_long(56 if arch == 0 else 220), ctypes.c_long(flag | 17), ctypes.c_long(0), 0, 0, 0)
    e = ctypes.get_errno()
    if r == 0:
        os._exit(0)
    out[name] = "ok" if r != -1 else errno.errorcode.get(e, str(e))
r = libc.syscall(ctypes.c_long(435), ctypes.c_long(0), ctypes.c_long(0))
out["clone3"] = errno.errorcode.get(ctypes.get_errno()) if r == -1 else "ok"
for name, fam in {families!r}.items():
    try:
        socket.socket(fam, socket.SOCK_RAW if name == "AF_PACKET" else socket.SOCK_DGRAM).close()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, str(exc.errno))
# What ordinary code needs still works.
a, b = socket.socketpair(); a.send(b"x"); out["socketpair_unix"] = b.recv(1).decode()
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(); out["af_inet"] = "ok"
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
out["seccomp_mode"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
out["no_new_privs"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs:")][0]
print(json.dumps(out))
"""

SYSCTL_CODE = """
import json, os
out = {{}}
for name in {sysctls!r}:
    try:
        with open("/proc/sys/" + name, "w") as f:
            f.write({payload!r} if name.endswith("core_pattern") else "3")
        out[name] = "written"
    except OSError as exc:
        out[name] = type(exc).__name__
for path in ("/proc/sysrq-trigger", "/sys/kernel/mm/transparent_hugepage/enabled"):
    try:
        with open(path, "w") as f:
            f.write("never" if path.startswith("/sys") else "h")
        out[path] = "written"
    except OSError as exc:
        out[path] = type(exc).__name__
# Then crash, as the known exploit does, so a planted core_pattern would run.
pid = os.fork()
if pid == 0:
    import ctypes
    ctypes.string_at(0)
os.waitpid(pid, 0)
print(json.dumps(out))
"""

PROC_CODE = """
import json, os
out = {}
for name in ("cmdline", "environ"):
    for pid in ("1", "self"):
        try:
            out[f"/proc/{pid}/{name}"] = open(f"/proc/{pid}/{name}", "rb").read().decode("utf-8", "replace")
        except OSError as exc:  # pid 1 is the broker, which is not dumpable
            out[f"/proc/{pid}/{name}"] = type(exc).__name__
for pid in ("1", "self"):
    try:
        out[f"/proc/{pid}/cwd"] = os.readlink(f"/proc/{pid}/cwd")
    except OSError as exc:
        out[f"/proc/{pid}/cwd"] = type(exc).__name__
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = [os.readlink(f"/proc/self/fd/{fd}"), os.path.isdir(f"/proc/self/fd/{fd}")]
    except OSError:
        pass
out["fds"] = fds
print(json.dumps(out))
"""

SHM_CODE = """
import json, os
out = {}
for folder in ("/dev/shm", "/dev"):
    written = 0
    try:
        with open(os.path.join(folder, "fill"), "wb") as f:
            block = b"x" * (1 << 20)
            for _ in range(300):
                f.write(block); f.flush(); written += 1
        out[folder] = ["no limit", written]
    except OSError as exc:
        out[folder] = [type(exc).__name__, written]
    try:
        os.unlink(os.path.join(folder, "fill"))
    except OSError:
        pass
print(json.dumps(out))
"""

SPINNERS_CODE = """
import subprocess, sys
spin = "import signal\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: pass"
for _ in range(4):
    subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
print("spinning")
"""


def run_json(session, code: str, timeout: float | None = None) -> dict:
    result = session.run(textwrap.dedent(code), timeout=timeout)
    assert result.outcome == "OUTCOME_OK", result.output
    return json.loads(result.output.strip().splitlines()[-1])


def probe_code() -> str:
    return PROBE_CODE.format(probes=PROBES, families=SOCKET_FAMILIES_DENIED)


def check_probes(out: dict) -> None:
    denied = {name: out[name] for name in [*PROBES, *SOCKET_FAMILIES_DENIED, "clone_newuser", "clone_newpid", "clone_newnet"]}
    assert all(v == "EPERM" for v in denied.values()), {k: v for k, v in denied.items() if v != "EPERM"}
    assert out["clone3"] == "ENOSYS"  # glibc falls back to clone, whose flags the filter checks
    assert (out["socketpair_unix"], out["af_inet"], out["fork"]) == ("x", "ok", 7)
    assert (out["seccomp_mode"], out["no_new_privs"]) == ("2", "1")


def sysctl_code(marker: Path) -> str:
    return SYSCTL_CODE.format(sysctls=SYSCTLS, payload=f"|/bin/sh -c 'touch {marker}'")


def host_sysctls() -> dict:
    return {name: Path("/proc/sys", name).read_text() for name in SYSCTLS if os.access(f"/proc/sys/{name}", os.R_OK)}


def check_sysctls(out: dict, before: dict, marker: Path) -> None:
    assert "written" not in out.values(), out
    time.sleep(0.2)  # a planted core_pattern helper would have run by now
    assert host_sysctls() == before
    assert not marker.exists()


def check_proc(out: dict, host_paths: list[str], kind: str = "local") -> None:
    text = json.dumps({k: v for k, v in out.items() if k != "fds"})
    leaked = [p for p in host_paths if p and p in text]
    assert not leaked, (leaked, text)
    # pid 1 is the broker: not dumpable, so its environment is not even readable.
    assert out["/proc/1/environ"] == "PermissionError"
    # No inherited descriptor of a host directory (an O_PATH fd would be a way out).
    assert not [fd for fd, (target, is_dir) in out["fds"].items() if is_dir], out["fds"]


def host_paths() -> list[str]:
    from agentic_vision.paths import state_dir

    return [os.getcwd(), str(state_dir()), str(Path.home()), str(Path(__file__).resolve().parent.parent)]


def check_memory_folders(out: dict) -> None:
    shm_error, shm_mib = out["/dev/shm"]
    assert shm_error == "OSError" or shm_error in ("MemoryError",), out  # ENOSPC
    assert shm_mib <= 65, out
    assert out["/dev"][0] != "no limit" and out["/dev"][1] == 0, out  # /dev itself is not writable


# -- the host's view of a session ----------------------------------------------------------------


def host_uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def cpu_usage_file(pid: int) -> Path | None:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            for base in (Path("/sys/fs/cgroup") / controllers, Path("/sys/fs/cgroup/cpuacct")):
                f = base / path.lstrip("/") / "cpuacct.usage"
                if f.exists():
                    return f
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            f = Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.stat"
            if f.exists():
                return f
    return None


def cpu_seconds(f: Path) -> float:
    text = f.read_text()
    if f.name == "cpu.stat":
        return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6
    return int(text) / 1e9


# -- the attacks, as root -----------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def as_root():
    require(os.geteuid() == 0, "root (the host-as-root half of the attacks; the other half is test_attacks_unprivileged.py)")


@pytest.fixture
def sandbox(open_sandbox):
    return open_sandbox(guard=False, timeout=30)


def test_sandbox_processes_are_not_host_root(sandbox):
    sandbox.run("import time")  # the runtime is up
    pids = children_of(session_root_pid(sandbox))
    assert len(pids) >= 2
    uids = {pid: host_uids(pid) for pid in pids}
    assert all(0 not in u for u in uids.values()), uids


def test_sysctl_writes_fail_and_the_host_keeps_its_values(sandbox, tmp_path):
    marker = Path("/tmp") / f"agentic-vision-pwned-{uuid.uuid4().hex[:8]}"
    before = host_sysctls()
    out = run_json(sandbox, sysctl_code(marker))
    check_sysctls(out, before, marker)


def test_dangerous_system_calls_and_socket_families_are_denied(sandbox):
    check_probes(run_json(sandbox, probe_code()))
    assert sandbox.run("print(6 * 7)").output == "42\n"


def _key_users() -> dict:
    """uid -> its key counts, for every uid but root (whose count other host
    work, Docker's per-container session keyrings among it, changes)."""
    text = Path("/proc/key-users").read_text() if Path("/proc/key-users").exists() else ""
    rows = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {uid.strip(): counts.split()[1:] for uid, counts in rows if uid.strip() != "0"}


def test_the_host_keyring_is_out_of_reach(sandbox):
    libc = ctypes.CDLL(None, use_errno=True)
    token = f"agentic-vision-{uuid.uuid4().hex[:8]}"
    add_key = 248 if platform.machine() == "x86_64" else 217
    keyctl = 250 if platform.machine() == "x86_64" else 219
    # A key in the host root's user keyring, as a secret the sandbox must not see.
    key = libc.syscall(ctypes.c_long(add_key), b"user", token.encode(), b"host-secret", ctypes.c_long(11), ctypes.c_long(-4))
    if key < 0:
        require(False, f"a usable kernel keyring on this host (add_key errno {ctypes.get_errno()})")
    try:
        before = _key_users()
        out = run_json(sandbox, f"""
            import ctypes, json
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                keys = open("/proc/keys").read()
            except OSError as exc:
                keys = type(exc).__name__
            planted = libc.syscall(ctypes.c_long({add_key}), b"user", b"planted-{token}", b"x", ctypes.c_long(1), ctypes.c_long(-4))
            read = libc.syscall(ctypes.c_long({keyctl}), ctypes.c_long(11), ctypes.c_long({key}), 0, 0)
            print(json.dumps({{"keys": keys, "planted": planted, "read": read}}))
        """)
        assert token not in out["keys"] and "host-secret" not in out["keys"]
        assert out["planted"] == -1 and out["read"] == -1
        sandbox.close()
        assert _key_users() == before  # nothing planted for any uid that outlives the session
    finally:
        libc.syscall(ctypes.c_long(keyctl), ctypes.c_long(9), ctypes.c_long(key), ctypes.c_long(-4))  # KEYCTL_UNLINK


def test_memory_backed_folders_are_capped(sandbox):
    from session_host import folder_used, inside_pid

    check_memory_folders(run_json(sandbox, SHM_CODE))
    # Then judged on the host: fill /dev/shm and try /dev, keep what was written, and let the host kernel count it.
    sandbox.run(SHM_CODE.replace("os.unlink", "str"))
    pid = inside_pid(sandbox)
    used = folder_used(pid, "/dev/shm")
    assert 32 * 2**20 <= used <= 64 * 2**20, used >> 20  # it wrote, up to the 64 MiB cap
    assert not os.path.exists(f"/proc/{pid}/root/dev/fill")  # /dev itself took nothing
    sandbox.run("import os\nos.unlink('/dev/shm/fill')")
    assert folder_used(pid, "/dev/shm") < 2**20


def test_proc_shows_no_host_paths(sandbox):
    check_proc(run_json(sandbox, PROC_CODE), host_paths(), sandbox.kind)


def test_cpu_spinners_are_held_to_the_quota(sandbox):
    assert sandbox.run(SPINNERS_CODE).output == "spinning\n"
    root = session_root_pid(sandbox)
    usage = cpu_usage_file(root)
    require(usage is not None, "a cpu accounting cgroup on this host")
    time.sleep(0.5)
    start, t0 = cpu_seconds(usage), time.monotonic()
    time.sleep(3.0)
    used, wall = cpu_seconds(usage) - start, time.monotonic() - t0
    quota = 1.0  # both sandboxes default to one CPU per session
    # Four spinners on this host would take every core; the quota holds them
    # to one CPU (the machine may be busy with other work: at most, not exactly).
    assert used <= quota * wall * 1.15 + 0.2, (used, wall)
    assert used >= 0.1, (used, wall)  # they did spin: the measurement is real
    spinners = children_of(root)
    sandbox.close()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in spinners) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in spinners if Path(f"/proc/{p}").exists()]


def test_setuid_programs_do_not_raise_privileges(sandbox):
    out = run_json(sandbox, """
        import json, os, subprocess
        found = [p for p in ("/usr/bin/su", "/bin/su", "/usr/bin/passwd", "/usr/bin/mount", "/bin/mount", "/usr/bin/newgrp")
                 if os.path.exists(p) and os.stat(p).st_mode & 0o4000]
        mounted = subprocess.run(["mount", "-t", "tmpfs", "x", "/tmp"], capture_output=True, text=True) if os.path.exists("/usr/bin/mount") or os.path.exists("/bin/mount") else None
        nnp = [l.split()[1] for l in open("/proc/self/status") if l.startswith("NoNewPrivs:")][0]
        print(json.dumps({"setuid": found, "nosuid": bool(os.statvfs("/usr").f_flag & os.ST_NOSUID), "nnp": nnp,
                          "mount_rc": None if mounted is None else mounted.returncode, "euid": os.geteuid()}))
    """)
    # A set-user-ID program cannot run as its owner: no_new_privs (both), and locally a nosuid /usr.
    assert out["nnp"] == "1" and out["euid"] != 0, out
    assert out["nosuid"] or sandbox.kind == "docker", out
    assert out["mount_rc"] in (None, 1, 32), out  # mount(8) fails


def test_the_staging_mounts_never_reach_the_host(sandbox):
    from agentic_vision.sandboxing.launcher import STAGE

    sandbox.run("print(1)")
    host_mounts = Path("/proc/self/mountinfo").read_text()
    assert "agentic-vision-stage" not in host_mounts
    assert not STAGE.exists() or list(STAGE.iterdir()) == []


def test_refusals_are_one_line_naming_the_fix(tmp_path):
    from agentic_vision.sandboxing.bubblewrap import WEAK_SETTING

    from agentic_vision.paths import sandbox_env_dir

    # A fresh state folder, and the sandbox environment named explicitly (there is no
    # silent fall-back to the host's interpreter).
    env = dict(os.environ, AGENTIC_VISION_HOME=str(tmp_path),
               AGENTIC_VISION_SANDBOX_PYTHON=str(sandbox_env_dir() / "bin" / "python"))
    cli = [str(Path(os.sys.executable).parent / "agentic-vision"), "exec", "--sandbox", "local", "--no-guard", "print(1)"]
    no_seccomp = [os.sys.executable, "-c", "import sys; sys.modules['pyseccomp'] = None\n"
                  "from agentic_vision.cli import main; sys.argv = ['agentic-vision', 'exec', '--sandbox', 'local', "
                  "'--no-guard', 'print(1)']; main()"]
    cases = [
        (no_seccomp, {}, "seccomp"),
        (cli, {"AGENTIC_VISION_SANDBOX_UID": "0"}, "cannot drop root"),
    ]
    for argv, extra, words in cases:
        done = subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode != 0 and words in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert "--sandbox docker" in done.stderr or "unprivileged account" in done.stderr
    allowed = subprocess.run(no_seccomp, env={**env, WEAK_SETTING: "1"}, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert allowed.returncode == 0 and allowed.stdout.strip() == "1", allowed.stderr


def test_ordinary_heavy_code_still_runs_under_the_filter(open_sandbox):
    """TensorFlow, scikit-learn, pandas, multiprocessing and joblib (its /dev/shm and
    semaphores) need nothing the filter, the read-only /dev or the drop took away."""
    session = open_sandbox(guard=False, timeout=150)
    result = session.run(textwrap.dedent("""
        import numpy as np, pandas as pd, sklearn.cluster, tensorflow as tf
        from multiprocessing import Pool
        from joblib import Parallel, delayed
        x = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 4))
        print(float(tf.reduce_sum(tf.matmul(x, tf.transpose(x)))))
        print(sklearn.cluster.KMeans(2, n_init=2).fit(np.random.rand(50, 2)).labels_.shape)
        print(pd.DataFrame({"a": [1, 2]}).describe().shape)
        with Pool(2) as pool:
            print(pool.map(abs, [-1, -2]))
        print(Parallel(n_jobs=2)(delayed(abs)(i) for i in (-3, -4)))
    """))
    assert result.outcome == "OUTCOME_OK", result.output
    # (TensorFlow may log a line of its own, e.g. about CUDA in the Docker image.)
    printed = [line for line in result.output.splitlines() if not line.startswith(("E0000", "W0000", "I0000"))]
    assert printed == ["1134.0", "(50,)", "(8, 1)", "[1, 2]", "[3, 4]"], result.output
