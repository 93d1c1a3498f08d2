"""The OS attacks again, with the host process an unprivileged user.

A child process runs as uid 65534 (setpriv) and opens a local sandbox whose
interpreter is a small virtual environment of the system's Python with
Pillow copied in (the project's own sandbox environment lives under /root,
which that user cannot read; the runtime needs Pillow for its inputs).  The attacks
are those of test_attacks_os.py, judged by the same host effects.  The
Docker sandbox is not run from here: the unprivileged user has no access to
the Docker socket, which is the point of being unprivileged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path

import pytest

from test_attacks_os import (
    PROC_CODE,
    SHM_CODE,
    check_memory_folders,
    check_probes,
    check_proc,
    check_sysctls,
    host_sysctls,
    probe_code,
    sysctl_code,
)

UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

DRIVER = r"""
import json, os, site, sys
site.addsitedir(sys.argv[1])  # the project's environment: its .pth files make the checkout importable
from agentic_vision.sandboxing.bubblewrap import LocalExecutor
from agentic_vision.sandboxing.session import Session

def tree(root):
    parents = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                parents[int(e)] = int(open(f"/proc/{e}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, todo = {root}, [root]
    while todo:
        p = todo.pop()
        for c, pp in parents.items():
            if pp == p and c not in found:
                found.add(c); todo.append(c)
    return sorted(found)

def uids(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]

executor = LocalExecutor(pool_size=0, python=sys.argv[2])
with Session(executor, [], 60, guard=False) as session:
    result = session.run(sys.stdin.read())
    pids = tree(session.worker_pid)
    print(json.dumps({"outcome": result.outcome, "output": result.output, "me": os.getuid(),
                      "uids": {p: uids(p) for p in pids}, "enforcement": executor.enforcement}))
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to become the unprivileged user), setpriv and the system's Python",
)


@pytest.fixture(scope="module")
def home():
    path = Path(tempfile.mkdtemp(prefix="agentic-vision-unpriv-", dir="/tmp"))
    venv = path / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    into = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    import PIL

    pil = Path(PIL.__file__).parent
    for name in (pil.name, "pillow.libs"):
        if (pil.parent / name).is_dir():
            shutil.copytree(pil.parent / name, into / name)
    for dirpath, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(dirpath, name), UID, UID)
    os.chown(path, UID, UID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_unprivileged(home: Path, code: str) -> dict:
    site_packages = sysconfig.get_paths()["purelib"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "AGENTIC_VISION_HOME": str(home), "LANG": "C.UTF-8"}
    done = subprocess.run(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--",
         SYSTEM_PYTHON, "-c", DRIVER, site_packages, str(home / "venv" / "bin" / "python")],
        input=code, capture_output=True, text=True, env=env, cwd=home, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["me"] == UID
    assert report["outcome"] == "OUTCOME_OK", report["output"]
    # Every process of the sandbox is the unprivileged caller on the host.
    assert len(report["uids"]) >= 2 and all(set(u) == {UID} for u in report["uids"].values()), report["uids"]
    report["result"] = json.loads(report["output"].strip().splitlines()[-1])
    return report


def test_syscall_probes_as_an_unprivileged_host_user(home):
    report = run_unprivileged(home, probe_code())
    check_probes(report["result"])
    assert report["enforcement"]["host user"] == f"host uid {UID} (the caller)"


def test_sysctls_as_an_unprivileged_host_user(home):
    marker = Path("/tmp") / f"agentic-vision-pwned-{uuid.uuid4().hex[:8]}"
    before = host_sysctls()
    check_sysctls(run_unprivileged(home, sysctl_code(marker))["result"], before, marker)


def test_keyring_as_an_unprivileged_host_user(home):
    def keys_of_uid() -> list[str]:
        rows = Path("/proc/key-users").read_text().splitlines() if Path("/proc/key-users").exists() else []
        return [row for row in rows if row.split(":")[0].strip() == str(UID)]

    before = keys_of_uid()
    code = (
        "import ctypes, json\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "nr = (248, 250) if __import__('platform').machine() == 'x86_64' else (217, 219)\n"
        "planted = libc.syscall(ctypes.c_long(nr[0]), b'user', b'planted', b'x', ctypes.c_long(1), ctypes.c_long(-4))\n"
        "linked = libc.syscall(ctypes.c_long(nr[1]), ctypes.c_long(1), ctypes.c_long(-3), 0, 0)\n"  # join session keyring
        "print(json.dumps({'planted': planted, 'linked': linked, 'errno': ctypes.get_errno()}))\n"
    )
    out = run_unprivileged(home, code)["result"]
    assert (out["planted"], out["linked"], out["errno"]) == (-1, -1, 1)  # EPERM
    assert keys_of_uid() == before


def test_memory_folders_and_proc_as_an_unprivileged_host_user(home):
    check_memory_folders(run_unprivileged(home, SHM_CODE)["result"])
    here = str(Path(__file__).resolve().parent.parent)
    check_proc(run_unprivileged(home, PROC_CODE)["result"], [str(home), here, sys.prefix])
