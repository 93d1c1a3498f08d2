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
    """[{"name", "import", "distribution"}] for the 37 libraries of the hosted environment."""
    data = json.loads((RUNTIME_DIR / "libraries.json").read_text())
    return [{k: entry[k] for k in ("name", "import", "distribution")} for entry in data]


def requirements_file() -> Path:
    return RUNTIME_DIR / "requirements.txt"
