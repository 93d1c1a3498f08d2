"""Where the in-sandbox code (the top-level ``sandbox/``) is on this host.

It is installed as ``agentic_vision.sandbox_runtime``; the host never runs it,
only binds it into bubblewrap, copies it into the Docker image, and reads
the library list and requirements shipped beside it.

The Docker image is built from Dockerfile.sandbox and these files.  In a
source checkout they are the repository's own; a wheel carries a copy of
Dockerfile.sandbox (and the script that makes the local Debian base image) in
``agentic_vision/sandboxing/image_build/`` (setup.py puts it there), so an
installed package builds the same image, with the same hash, as the checkout
it was made from.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import agentic_vision.sandbox_runtime as _runtime_package

from .image_source import source_files, tree_files

RUNTIME_DIR = Path(_runtime_package.__file__).resolve().parent
CHECKOUT = RUNTIME_DIR.parent  # holds Dockerfile.sandbox when this is a source checkout
SHIPPED = Path(__file__).resolve().parent / "image_build"  # the wheel's copies of the build files


def image_sources() -> dict[str, Path] | None:
    """{name in the build context: file} for the Docker image: this checkout's
    Dockerfile.sandbox and sandbox/, else the installed package's; None when
    neither is here (a package built without its build files)."""
    in_checkout = source_files(CHECKOUT)
    if in_checkout is not None:
        return {name: CHECKOUT / name for name in in_checkout}
    if not (SHIPPED / "Dockerfile.sandbox").is_file():
        return None
    files = {"Dockerfile.sandbox": SHIPPED / "Dockerfile.sandbox"}
    files.update({name: RUNTIME_DIR / name.partition("/")[2] for name in tree_files(RUNTIME_DIR, "sandbox")})
    return files


def build_script(name: str) -> Path | None:
    """A script of scripts/ (make-base-image.sh), from the checkout or the wheel's copies."""
    for path in (CHECKOUT / "scripts" / name, SHIPPED / name):
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=None)
def library_specs() -> list[dict]:
    """[{"name", "import", "distribution", "hosted"}]: the 37 libraries of the hosted
    environment (hosted True), then the extras this sandbox adds (pypdfium2)."""
    data = json.loads((RUNTIME_DIR / "libraries.json").read_text())
    return [{**{k: entry[k] for k in ("name", "import", "distribution")}, "hosted": entry.get("hosted", True)}
            for entry in data]


def hosted_names() -> set[str]:
    return {spec["name"] for spec in library_specs() if spec["hosted"]}


def library_summary(report: dict) -> str:
    """"37 of the hosted 37 libraries import, plus pypdfium2" for a libraries report."""
    hosted = hosted_names()
    have = sum(1 for name, status in report.items() if name in hosted and status.get("available"))
    extras = [name for name, status in report.items() if name not in hosted and status.get("available")]
    return f"{have} of the hosted {len(hosted)} libraries import" + (f", plus {', '.join(extras)}" if extras else "")


def requirements_file() -> Path:
    return RUNTIME_DIR / "requirements.txt"
