"""A small pure-Python wheel made by the test itself: no build tools, no network."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

NAME, VERSION = "avlibtest", "1.0"
MODULE = 'def hello():\n    return "hello from avlibtest"\n'


def make_wheel(folder: Path, name: str = NAME, version: str = VERSION, modules: dict | None = None) -> Path:
    """Writes NAME-VERSION-py3-none-any.whl (METADATA, WHEEL, RECORD and the modules) into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = dict(modules or {f"{name}/__init__.py": MODULE})
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


def isolated_pip_env(env: dict) -> dict:
    """The environment without the host's pip settings: only what the command line says counts."""
    clean = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    clean["PIP_CONFIG_FILE"] = "/dev/null"
    return clean
