"""Local environments with extra libraries, layered on the default one.

The default ("fidelity") environment, ``sandbox-env``, holds the hosted
library list and stays as it is.  A set of extras gets its own small venv,
``envs/libs-<hash>``, made from the same interpreter without pip, whose
site-packages has a ``.pth`` line pointing at the default environment's
site-packages by a *relative* path: on the host (where pip resolves against
the hosted libraries, pinned to their versions by the default requirements
as constraints) and inside bubblewrap alike, which binds both folders at the
same relative places (``inside_paths.inside_paths``).  Nothing of the 3 GB is
copied.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import InputError, SandboxUnavailable
from ..paths import sandbox_env_dir, state_dir
from .environment import build_env, env_is_current, requirements_hash
from .extras import LibrarySet, Manifest, PackageSource, pip_failure
from .extras_manifest import for_site
from .runtime_files import requirements_file

STAMP = "agentic-vision-layer.json"  # written last: a layer without it is not ready
LINK = "_agentic_vision_base.pth"


def envs_dir() -> Path:
    return state_dir() / "envs"


def layer_dir(libs: LibrarySet) -> Path:
    return envs_dir() / libs.name


def site_packages(env: Path) -> Path:
    found = sorted(env.glob("lib/python3*/site-packages"))
    if not found:
        raise SandboxUnavailable(f"{env} has no site-packages: run 'agentic-vision sandbox setup' again")
    return found[0]


def read_stamp(env: Path) -> dict | None:
    try:
        return json.loads((env / STAMP).read_text())
    except (OSError, ValueError):
        return None


def find_layer(libs: LibrarySet) -> tuple[Path, Manifest]:
    """The interpreter of the set's layered environment and what it has; a one-line error
    with the command to run when it is not set up or was made for another default environment."""
    env = layer_dir(libs)
    stamp = read_stamp(env)
    if stamp is None or not (env / "bin" / "python").exists():
        raise SandboxUnavailable(f"the libraries {libs} are not set up for the local sandbox: run {libs.quoted('setup')}")
    if stamp.get("base") != requirements_hash():
        raise SandboxUnavailable(f"the libraries {libs} were set up on an older sandbox environment: "
                                 f"run {libs.quoted('setup')} again")
    return env / "bin" / "python", Manifest.from_dict(stamp)


def folder_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def list_layers() -> list[dict]:
    """Every layered environment set up here, for `sandbox info`."""
    out = []
    current = requirements_hash()
    for env in sorted(envs_dir().glob("libs-*")) if envs_dir().is_dir() else []:
        stamp = read_stamp(env)
        if stamp is None:
            continue
        out.append({"name": env.name, "path": str(env), "size_bytes": folder_size(env),
                    "requested": stamp.get("requested", []), "installed": stamp.get("installed", []),
                    "current": stamp.get("base") == current})
    return out


def build_layer(libs: LibrarySet, source: PackageSource = PackageSource(), *, force: bool = False,
                echo=print, python: str | None = None) -> Path:
    """Makes (or finds current) the layered environment of ``libs``; returns its folder.

    pip runs on the host; a failure removes the half-made folder and is one line."""
    source.check()
    base = build_env(python, echo=echo)  # the default environment first (a no-op when current)
    env = layer_dir(libs)
    stamp = read_stamp(env)
    if not force and stamp is not None and stamp.get("base") == requirements_hash():
        echo(f"{libs.name} is up to date: {env} ({Manifest.from_dict(stamp).summary() or 'nothing beyond the sandbox'})")
        return env
    base_python = base / "bin" / "python"
    shutil.rmtree(env, ignore_errors=True)
    env.parent.mkdir(parents=True, exist_ok=True)
    echo(f"installing {libs} into {env} (on top of {base})")
    try:
        _make(env, base, base_python, libs, source, echo)
    except BaseException:
        shutil.rmtree(env, ignore_errors=True)  # never a half-made layer
        raise
    return env


def _make(env: Path, base: Path, base_python: Path, libs: LibrarySet, source: PackageSource, echo) -> None:
    run = subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(env)], capture_output=True, text=True)
    if run.returncode != 0:
        raise SandboxUnavailable(f"could not make the environment {env}: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    site = site_packages(env)
    (site / LINK).write_text(os.path.relpath(site_packages(base), site) + "\n")
    with tempfile.TemporaryDirectory(prefix="agentic-vision-pip-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [str(base_python), "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--no-input",
                "--disable-pip-version-check", "--progress-bar", "off", "--report", str(report),
                # The hosted libraries keep their versions: extras that need others are refused.
                "-c", str(requirements_file()), *source.pip_args(), *libs.requirements]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            echo("    " + line.rstrip())
        if proc.wait() != 0:
            raise InputError(pip_failure("".join(lines), libs, no_index=source.no_index))
        installed = for_site(json.loads(report.read_text()), str(site))
    (env / STAMP).write_text(json.dumps({"base": requirements_hash(), "requested": list(libs.requirements),
                                         "installed": installed}, indent=1))
    manifest = Manifest(list(libs.requirements), installed)
    echo(f"{libs.name} ready: {env} ({manifest.summary() or 'nothing beyond the sandbox: all of it is there already'})")


def environments_info() -> list[dict]:
    """The default environment and every layer on it, with sizes, for `sandbox info`."""
    base = sandbox_env_dir()
    default = {"name": "default", "path": str(base), "size_bytes": folder_size(base) if base.is_dir() else 0,
               "requested": [], "installed": [], "current": env_is_current(base)}
    return [default, *list_layers()]
