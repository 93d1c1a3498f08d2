"""Choosing a sandbox by name: "local", "docker" or "auto"."""

from __future__ import annotations

import threading

from ..errors import InputError
from .bubblewrap import LocalExecutor
from .docker import DockerExecutor, docker_ready

_executors: dict = {}
_lock = threading.Lock()
KINDS = ("local", "docker", "auto")


def resolve_kind(kind: str) -> str:
    """"auto" is Docker when an engine answers and the image is built, else local."""
    if kind not in KINDS:
        raise InputError(f"unknown sandbox {kind!r}: choose one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    return "docker" if docker_ready() else "local"


def get_executor(kind: str = "local", *, pool_size: int | None = None, **options):
    """A shared executor per kind and options, so its warm pool serves every session."""
    kind = resolve_kind(kind)
    key = (kind, pool_size, tuple(sorted(options.items())))
    with _lock:
        executor = _executors.get(key)
        if executor is None:
            if kind == "local":
                executor = LocalExecutor(pool_size=1 if pool_size is None else pool_size, **options)
            else:
                executor = DockerExecutor(pool_size=1 if pool_size is None else pool_size, **options)
            _executors[key] = executor
    return executor
