"""Where the in-sandbox code (the top-level ``sandbox/``) is on this host.

It is installed as ``agentic_vision.sandbox_runtime``; the host never runs it,
only binds it into bubblewrap, copies it into the Docker image, and reads
the library list and requirements shipped beside it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import agentic_vision.sandbox_runtime as _runtime_package

RUNTIME_DIR = Path(_runtime_package.__file__).resolve().parent
CHECKOUT = RUNTIME_DIR.parent  # holds Dockerfile.sandbox when this is a source checkout


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
