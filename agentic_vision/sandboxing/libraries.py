"""Which of Gemini's libraries really import in a sandbox, cached per sandbox build."""

from __future__ import annotations

import hashlib
import json

from ..paths import state_dir
from .runtime_files import library_specs
from .session import Session


def available_names(report: dict) -> list[str]:
    """Names from a libraries report (as `Session.libraries` returns) that imported."""
    return sorted(name for name, status in report.items() if status.get("available"))


def available_libraries(session: Session) -> list[str]:
    """Names of the hosted list that really import in this session's sandbox.

    Asked once per sandbox build (an import of all 37, tensorflow included,
    takes seconds) in a separate throwaway session, then cached on disk.
    """
    key = session.executor.cache_key
    specs = [*library_specs(), *session.executor.extras]
    digest = hashlib.sha256(f"{key}|{json.dumps(specs)}".encode()).hexdigest()[:20]
    cache = state_dir() / "libraries" / f"{digest}.json"
    if cache.exists():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass
    with Session(session.executor, [], 300, guard=False) as probe:
        names = available_names(probe.libraries)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(names))
    except OSError:
        pass  # only a cache: the next chat asks again
    return names
