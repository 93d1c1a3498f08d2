"""Shared fixtures: real sandboxes, real images that ship inside packages."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# -- the network guard (tests/netguard/agentic_vision_netguard.py) ---------------------------------------------
# Installed before any test module is imported, here and (through PYTHONPATH and its sitecustomize.py) in
# every Python child that inherits the environment.  A connection to anything but loopback, a unix socket or a
# network namespace the test made is refused before the system call and fails the test that was running.
NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
sys.path.insert(0, str(NETGUARD_DIR))
import agentic_vision_netguard as netguard  # noqa: E402

_guard_log = tempfile.NamedTemporaryFile(prefix="agentic-vision-netguard-", suffix=".log", delete=False)
_guard_log.close()
os.chmod(_guard_log.name, 0o622)  # children that tests run as another user report here too
os.environ[netguard.LOG_SETTING] = _guard_log.name
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(NETGUARD_DIR), os.environ.get("PYTHONPATH")) if p)
netguard.install(main=True)
_guard_seen = 0


def blocked_connections() -> list[str]:
    """The guard's lines since the last look (and so no longer a failure of the running test)."""
    global _guard_seen
    with open(_guard_log.name, "rb") as log:
        log.seek(_guard_seen)
        new = log.read()
    _guard_seen += len(new)
    return new.decode(errors="replace").splitlines()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    lines = blocked_connections()
    if lines:  # also where the test passed or skipped: the attempt itself is the failure
        report.outcome = "failed"
        report.longrepr = "\n".join(lines)
    return report


def pytest_unconfigure(config):
    try:
        os.unlink(_guard_log.name)
    except OSError:
        pass

SKIMAGE_DATA = None
try:
    import skimage.data

    SKIMAGE_DATA = Path(skimage.data.__file__).parent
except ImportError:  # pragma: no cover - the test extra installs it
    pass


def sample(name: str) -> Path:
    """An image or file shipped inside scikit-image or matplotlib."""
    candidates = []
    if SKIMAGE_DATA is not None:
        candidates.append(SKIMAGE_DATA / name)
    import matplotlib

    candidates.append(Path(matplotlib.get_data_path()) / "sample_data" / name)
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(name)


# -- strict mode (CI): a real part that is missing fails the test instead of skipping it -------------------------
STRICT_SETTING = "AGENTIC_VISION_TEST_STRICT"


def strict() -> bool:
    return os.environ.get(STRICT_SETTING) == "1"


def require(condition: object, what: str) -> None:
    """Skips the test unless ``condition`` holds; with AGENTIC_VISION_TEST_STRICT=1 (set by .ci/run) fails it
    instead, with one line.  ``what`` names what is missing and how to get it, e.g. "Node.js (node on PATH)".
    Every test that needs a real part the host may lack (engine, sshd, paramiko, Node, Ray, unshare -n, root)
    checks it through here, so that a green CI run means those tests ran."""
    if condition:
        return
    if strict():
        pytest.fail(f"{STRICT_SETTING}=1 and this test cannot run: missing {what}", pytrace=False)
    pytest.skip(f"missing {what}")


def require_import(module: str, what: str):
    """The module, imported; else require(False, what)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        require(False, what)


def can_unshare_net() -> bool:
    import shutil
    import subprocess

    return shutil.which("unshare") is not None and \
        subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def pytest_terminal_summary(terminalreporter):
    """What was skipped and why, at the end of every run (in CI only the live-key test should be here)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.section("skipped, and why")
    if not reasons:
        terminalreporter.write_line("nothing was skipped")
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{count:4d}  {reason}")


def docker_wanted() -> bool:
    return os.environ.get("AGENTIC_VISION_TEST_DOCKER", "auto") != "0"


def sandbox_kinds() -> list:
    kinds = ["local"]
    if docker_wanted():
        kinds.append(pytest.param("docker", marks=pytest.mark.docker))
    return kinds


def require_docker() -> None:
    """Skips the test without a working engine and image, or fails it where Docker is required (CI)."""
    if not docker_wanted():
        pytest.skip("Docker tests are switched off (AGENTIC_VISION_TEST_DOCKER=0)")
    try:
        from agentic_vision.sandboxing.docker import docker_problem
    except ImportError:
        problem = "the Docker sandbox is not part of this build"
    else:
        problem = docker_problem()
    if problem and os.environ.get("AGENTIC_VISION_TEST_DOCKER") == "1":
        pytest.fail(f"Docker is required here (AGENTIC_VISION_TEST_DOCKER=1) but unavailable: {problem}", pytrace=False)
    require(not problem, f"a working Docker engine and sandbox image: {problem}")


@pytest.fixture(params=sandbox_kinds())
def sandbox_kind(request) -> str:
    kind = request.param
    if kind == "docker":
        require_docker()
    return kind


@pytest.fixture
def open_sandbox(sandbox_kind):
    """open_sandbox(inputs=..., guard=..., timeout=...) -> a session closed after the test."""
    from agentic_vision import open_session

    sessions = []

    def opener(**kwargs):
        session = open_session(sandbox_kind, **kwargs)
        sessions.append(session)
        return session

    yield opener
    for session in sessions:
        session.close()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A real photograph (JPEG) under a plain name."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(sample("rocket.jpg").read_bytes())
    return path


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str):
    """A tmpfs of its own at ``where`` (made) for the test, unmounted afterwards: a real small or
    read-only disk.  Needs root (permissions do not stop root, a mount does): through require()."""
    require(os.geteuid() == 0, "root, to mount a test tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    require(done.returncode == 0, f"a mountable tmpfs: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
