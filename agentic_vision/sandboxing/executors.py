"""Choosing a sandbox by name: "local", "docker" or "auto"."""

from __future__ import annotations

import threading

from ..errors import InputError, SandboxUnavailable
from .bubblewrap import LocalExecutor, check_local_sandbox
from .docker import DockerExecutor, docker_problem, docker_ready
from .docker_engine import connect, settings
from .extras import LibrarySet, library_set
from .extras_env import find_layer
from .extras_image import extras_image_name, image_problem, read_manifest

_executors: dict = {}
_lock = threading.Lock()
KINDS = ("local", "docker", "auto")
DOCKER_ONLY = ("docker_host", "lease")  # options of the Docker sandbox alone


def resolve_kind(kind: str, docker_host: str | None = None, libraries=()) -> str:
    """"auto" is Docker when an engine answers and the image is built (with the
    libraries asked for, if any), else local."""
    if kind not in KINDS:
        raise InputError(f"unknown sandbox {kind!r}: choose one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    libs = as_library_set(libraries)
    if libs:
        return "docker" if docker_problem(image=extras_image_name(libs), docker_host=docker_host) is None else "local"
    return "docker" if docker_ready(docker_host) else "local"


def as_library_set(libraries) -> LibrarySet:
    """``libraries=`` as given (a LibrarySet, a list of requirements, one string or None), normalised."""
    if isinstance(libraries, LibrarySet):
        return libraries
    return library_set(libraries or ())


def check_libraries(kind: str, libraries, docker_host: str | None = None) -> str:
    """The sandbox kind to use ("auto" resolved); a set of libraries not set up (local) or
    not built (Docker) is one SandboxUnavailable line with the command to run, before any
    model call or sandbox start."""
    libs = as_library_set(libraries)
    kind = resolve_kind(kind, docker_host, libs)
    if not libs:
        return kind
    if kind == "local":
        find_layer(libs)
        return kind
    engine = connect(docker_host)
    try:
        problem = image_problem(engine, libs)
    finally:
        engine.client.close()
    if problem:
        raise SandboxUnavailable(problem)
    return kind


def check_docker_host(kind: str, docker_host: str | None, cli: bool = False) -> None:
    """An engine named for the local sandbox would go unused: refused, not ignored."""
    if docker_host and kind == "local":
        name, other = ("--docker-host", "--sandbox docker or auto") if cli else \
            ("docker_host", "sandbox 'docker' or 'auto'")
        raise InputError(f"{name} is for the Docker sandbox, not the local one: drop it, or use {other}")


def sandbox_in_use(kind: str, docker_host: str | None = None, libraries=()) -> tuple[str, str | None]:
    """What a server or a run starting now will use: the kind ("auto" resolved against the
    given engine) and, for Docker, the engine's address.  The Docker sandbox asked for by
    name and unusable is one SandboxUnavailable line now, not an error per request; so is
    a local sandbox without bubblewrap or its library environment."""
    kind = resolve_kind(kind, docker_host, libraries)
    if kind == "local":
        check_local_sandbox()
        return kind, None
    problem = docker_problem(docker_host=docker_host)  # cached: "auto" has just asked
    if problem:
        raise SandboxUnavailable(problem)
    return kind, settings(docker_host)[1]


def describe_sandbox(asked: str, kind: str, engine: str | None) -> str:
    """For start-up lines: "docker at tcp://...", "local", "auto, now docker at ..."."""
    where = f"{kind} at {engine}" if engine else kind
    return where if asked == kind else f"{asked}, now {where}"


def get_executor(kind: str = "local", *, pool_size: int | None = None, libraries=(), **options):
    """A shared executor per kind and options, so its warm pool serves every session.

    ``libraries``: extra requirements; the sandbox runs their layered
    environment (local) or image (Docker), which must be set up or built."""
    options = {k: v for k, v in options.items() if not (k in DOCKER_ONLY and v is None)}
    libs = as_library_set(libraries)
    kind = check_libraries(kind, libs, options.get("docker_host")) if libs else resolve_kind(kind, options.get("docker_host"))
    if kind == "local":  # e.g. "auto" without an engine: where the Docker sandbox would run does not matter
        options = {k: v for k, v in options.items() if k not in DOCKER_ONLY}
    manifest = None
    if libs and kind == "local":
        python, manifest = find_layer(libs)
        options["python"] = str(python)
    elif libs:
        options["image"] = extras_image_name(libs)
    key = (kind, pool_size, tuple(sorted(options.items())))
    with _lock:
        executor = _executors.get(key)
        if executor is None:
            if kind == "local":
                executor = LocalExecutor(pool_size=1 if pool_size is None else pool_size, **options)
            else:
                executor = DockerExecutor(pool_size=1 if pool_size is None else pool_size, **options)
            if libs:
                if manifest is None:
                    manifest = read_manifest(executor.engine, executor.image_id)
                executor.extras = tuple(manifest.specs())
            _executors[key] = executor
    return executor
