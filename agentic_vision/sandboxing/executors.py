"""Choosing a sandbox by name: "local", "docker" or "auto"."""

from __future__ import annotations

import threading

from ..errors import InputError
from .bubblewrap import LocalExecutor
from .docker import DockerExecutor, docker_ready

_executors: dict = {}
_lock = threading.Lock()
KINDS = ("local", "docker", "auto")
DOCKER_ONLY = ("docker_host", "lease")  # options of the Docker sandbox alone


def resolve_kind(kind: str, docker_host: str | None = None) -> str:
    """"auto" is Docker when an engine answers and the image is built, else local."""
    if kind not in KINDS:
        raise InputError(f"unknown sandbox {kind!r}: choose one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    return "docker" if docker_ready(docker_host) else "local"


def get_executor(kind: str = "local", *, pool_size: int | None = None, **options):
    """A shared executor per kind and options, so its warm pool serves every session."""
    options = {k: v for k, v in options.items() if not (k in DOCKER_ONLY and v is None)}
    kind = resolve_kind(kind, options.get("docker_host"))
    if kind == "local":  # e.g. "auto" without an engine: where the Docker sandbox would run does not matter
        options = {k: v for k, v in options.items() if k not in DOCKER_ONLY}
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
