"""Where the host's directories appear inside the local sandbox (and the parser jail)."""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

from ..errors import SandboxUnavailable


@lru_cache(maxsize=None)
def interpreter_roots(python: str) -> tuple[str, ...]:
    """Directories the interpreter needs, to be bound read-only at the same paths.

    Besides its prefixes, the environments its ``sys.path`` reaches through
    ``.pth`` lines: a layer of extra libraries (extras_env) reads the default
    environment's site-packages that way."""
    probe = ("import sys, json; print(json.dumps([sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, "
             "sys.base_exec_prefix}), sys.path]))")
    try:
        out = subprocess.run([python, "-E", "-s", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"the sandbox interpreter {python} does not run: {exc}") from None
    prefixes, path = json.loads(out.stdout)
    roots = set(prefixes)
    roots.add(str(Path(python).resolve().parent.parent))
    for entry in path:
        env = venv_of(entry)
        if env is not None:
            roots.add(env)
    system = ("/usr", "/bin", "/lib", "/lib64", "/sbin")
    return tuple(sorted(r for r in roots if not any(r == s or r.startswith(s + "/") for s in system)))


def venv_of(entry: str) -> str | None:
    """The virtual environment a sys.path entry lies in (its lib/pythonX.Y/site-packages), or None."""
    parts = Path(entry).parts
    if len(parts) > 3 and parts[-1] == "site-packages" and parts[-3] == "lib":
        env = Path(*parts[:-3])
        if (env / "pyvenv.cfg").is_file():
            return str(env)
    return None


def inside_paths(roots) -> dict[str, str]:
    """Host directory -> where it appears inside; the same path unless that is
    hidden by the sandbox's own /work or /tmp (a project venv under /work), or
    is a virtual environment (relocatable: its pyvenv.cfg names the base
    interpreter), whose host path would tell where the user keeps their data.
    Several environments (a layer of extras and the default one under it) keep
    their places relative to each other, which the layer's .pth line relies on."""
    mapping = {}
    venvs = [root for root in roots if (Path(root) / "pyvenv.cfg").is_file()]
    common = os.path.commonpath(venvs) if len(venvs) > 1 else None
    for i, root in enumerate(roots):
        hidden = any(root == p or root.startswith(p + "/") for p in ("/work", "/tmp", "/proc", "/dev", "/opt/agentic-vision"))
        if common is not None and root in venvs:
            mapping[root] = f"/opt/agentic-vision/python/layers/{os.path.relpath(root, common)}"
        else:
            mapping[root] = f"/opt/agentic-vision/python/{i}" if hidden or root in venvs else root
    return mapping


def inside_python(python: Path, mapping: dict[str, str]) -> str:
    text = str(python)
    for root, inside in sorted(mapping.items(), key=lambda item: -len(item[0])):
        if text == root or text.startswith(root + "/"):
            return inside + text[len(root):]
    return text
