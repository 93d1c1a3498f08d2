"""`sandbox setup` shows one progress display (what is installed, how big), pip's log only with -v.

pip really runs, offline: a wheel made here, found through PIP_FIND_LINKS."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from pty_support import joined, run_on_pty

SCRIPT = ("import sys\nfrom agentic_vision.cli.setup_progress import build_sandbox_env\n"
          "build_sandbox_env(verbose=sys.argv[2] == 'verbose', requirements=sys.argv[1])\n")


def make_wheel(folder: Path, name: str = "tiny_pkg", version: str = "1.0") -> Path:
    """A valid pure-Python wheel, padded to a known size with a data file."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}/padding.bin": os.urandom(3_000_000),  # random: the wheel stays about 3 MB
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


def setup_env(tmp_path: Path) -> dict:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    (tmp_path / "req.txt").write_text("tiny-pkg==1.0\n")
    return {**os.environ, "AGENTIC_VISION_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(wheels)}


def test_on_a_terminal_one_progress_display_and_no_pip_log(tmp_path):
    env = setup_env(tmp_path)
    status, chunks = run_on_pty([sys.executable, "-c", SCRIPT, str(tmp_path / "req.txt"), "quiet"], env=env)
    data = joined(chunks)
    assert status == 0, data
    assert b"unpacking tiny_pkg-1.0-py3-none-any.whl (3.0 MB)" in data  # what, and how big
    assert b"installing 1 packages (tiny-pkg)" in data
    assert b"sandbox environment ready" in data
    for pip_line in (b"Looking in links", b"Successfully installed", b"Processing "):
        assert pip_line not in data
    installed = subprocess.run([str(tmp_path / "home" / "sandbox-env" / "bin" / "python"), "-c",
                                "import tiny_pkg; print(tiny_pkg.VALUE)"], capture_output=True, text=True)
    assert installed.stdout == "42\n"


def test_verbose_shows_pips_log(tmp_path):
    env = setup_env(tmp_path)
    status, chunks = run_on_pty([sys.executable, "-c", SCRIPT, str(tmp_path / "req.txt"), "verbose"], env=env)
    assert status == 0 and b"Successfully installed tiny-pkg-1.0" in joined(chunks)


def test_in_a_log_one_line_per_package_and_a_failure_quotes_pip(tmp_path):
    env = setup_env(tmp_path)
    ok = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "req.txt"), "quiet"], env=env,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "  unpacking tiny_pkg-1.0-py3-none-any.whl (3.0 MB)\n" in ok.stderr and "\x1b" not in ok.stderr
    (tmp_path / "bad.txt").write_text("no-such-package-here==9\n")
    failing = ("import sys\nfrom agentic_vision.cli.setup_progress import build_sandbox_env\n"
               "from agentic_vision.errors import SandboxUnavailable\n"
               "try:\n    build_sandbox_env(requirements=sys.argv[1])\n"
               "except SandboxUnavailable as exc:\n    print(exc)\n")
    bad = subprocess.run([sys.executable, "-c", failing, str(tmp_path / "bad.txt")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert "building the sandbox environment failed while installing the libraries (ERROR: " in bad.stdout
    assert "no-such-package-here" in bad.stdout and "-v shows pip's log" in bad.stdout
