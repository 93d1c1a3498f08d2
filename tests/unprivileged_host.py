"""Attack steps run in a host process of an unprivileged user, on the local sandbox.

The tests run as root; this module starts a child process as uid 65534
(setpriv) that opens local sandboxes and runs a list of steps in them, then
prints what each step found as JSON, for the tests to judge with the same
checks as their root versions.  A step names a function ``module:play`` of
the test modules, called as ``play(session, *args)`` in a fresh session with
the given options (``entry``, ``timeout``, ``guard``); whatever it returns
(JSON) is that step's facts, or its traceback if it raised.  One child runs
many steps: its start, and a sandbox environment's first start, cost seconds.

The sandbox's interpreter is a small virtual environment of the system's
Python with Pillow copied in (the project's own sandbox environment lives
under /root, which that user cannot read; the runtime needs Pillow for its
inputs).  The child itself runs the system's Python with the project's
environment on its path (the checkout and its .venv are world-readable).
The Docker sandbox is not run from here: the unprivileged user has no access
to the Docker socket, which is the point of being unprivileged.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path

if __name__ == "__main__":  # the child: the project's environment (its .pth files make the checkout importable)
    import site

    site.addsitedir(sys.argv[1])

import pytest  # noqa: E402

UID = 65534
SYSTEM_PYTHON = "/usr/bin/python3"

@pytest.fixture(autouse=True)
def needs_root():
    """Used by test modules as ``pytestmark = pytest.mark.usefixtures("needs_root")``."""
    from conftest import require

    require(os.geteuid() == 0 and shutil.which("setpriv") and os.access(SYSTEM_PYTHON, os.X_OK),
            f"root (to become the unprivileged user), setpriv and the system's Python {SYSTEM_PYTHON}")


def small_venv(venv: Path) -> Path:
    """A virtual environment of the system's Python with Pillow copied in (what the sandbox's
    runtime needs for its inputs): its site-packages folder."""
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    into = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    import PIL

    pil = Path(PIL.__file__).parent
    for name in (pil.name, "pillow.libs"):
        if (pil.parent / name).is_dir():
            shutil.copytree(pil.parent / name, into / name)
    return into


@pytest.fixture(scope="module")
def home():
    """A folder of the unprivileged user: its state folder, and the venv the sandbox runs."""
    path = Path(tempfile.mkdtemp(prefix="agentic-vision-unpriv-", dir="/tmp"))
    small_venv(path / "venv")
    for dirpath, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(dirpath, name), UID, UID)
    os.chown(path, UID, UID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def step(play, *args, **session) -> dict:
    """A step: ``play`` (a function of a test module) with ``args``, in a session opened with ``session``."""
    return {"play": f"{play.__module__}:{play.__name__}", "args": list(args), "session": session}


def start_unprivileged(home: Path, steps: list[dict]) -> subprocess.Popen:
    """Starts the child that runs ``steps``; ``finish`` collects their facts."""
    with tempfile.NamedTemporaryFile("w", dir=home, prefix="steps-", suffix=".json", delete=False) as f:
        json.dump(steps, f)
    os.chmod(f.name, 0o644)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "AGENTIC_VISION_HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.Popen(
        ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--", SYSTEM_PYTHON, __file__,
         sysconfig.get_paths()["purelib"], str(home / "venv" / "bin" / "python"), f.name],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=home,
    )


def finish(child: subprocess.Popen, timeout: float = 240) -> list[dict]:
    """The facts of each step, in order; the child must have run as the unprivileged user."""
    try:
        out, err = child.communicate(timeout=timeout)
    except BaseException:
        child.kill()
        child.communicate()
        raise
    assert child.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert report["me"] == UID
    return report["steps"]


def run_unprivileged(home: Path, steps: list[dict], timeout: float = 240) -> list[dict]:
    return finish(start_unprivileged(home, steps), timeout)


def facts_of(found: dict) -> dict:
    """A step's facts, or the test fails with the step's own traceback."""
    if "error" in found:
        pytest.fail(f"the step failed in the unprivileged host process:\n{found['error']}", pytrace=False)
    assert found["host user"] == f"host uid {UID} (the caller)"  # bubblewrap ran as that user, no drop
    return found["facts"]


# -- the child: runs as the unprivileged user ---------------------------------------------------


def main() -> None:
    from agentic_vision import open_session

    python = sys.argv[2]
    found = []
    for spec in json.loads(Path(sys.argv[3]).read_text()):
        module, name = spec["play"].split(":")
        options = dict(spec["session"])
        if "entry" in options:
            options["entry"] = tuple(options["entry"])  # part of the executor's (hashable) key
        try:
            play = getattr(importlib.import_module(module), name)
            with open_session("local", python=python, **options) as session:
                facts = play(session, *spec["args"])
                found.append({"facts": facts, "host user": session.executor.enforcement["host user"]})
        except Exception:
            found.append({"error": traceback.format_exc()})
    print(json.dumps({"me": os.getuid(), "steps": found}))


if __name__ == "__main__":
    main()
