"""What `ask` and `exec` make sure of before any sandbox starts: the sandbox
chosen, and for the local one its library environment (set up with progress
when allowed, else one line that says how)."""

from __future__ import annotations

import os

import click

from ..errors import SandboxUnavailable

AUTO_SETUP = "AGENTIC_VISION_AUTO_SETUP"  # ./av sets it: a checkout sets itself up


def choose_sandbox(kind: str, quiet: bool, docker_host: str | None = None, libraries=()) -> str:
    """The sandbox kind to use ("auto" resolved), with the local environment ready
    (and the extra ``libraries``, when asked for, set up or built)."""
    from ..sandboxing.executors import check_docker_host, check_libraries, resolve_kind

    check_docker_host(kind, docker_host, cli=True)
    if libraries:
        if resolve_kind(kind, docker_host, libraries) == "local":
            ensure_local_env(quiet)
        return check_libraries(kind, libraries, docker_host)
    resolved = resolve_kind(kind, docker_host)
    if not quiet:
        say_why_not_docker(kind, resolved, docker_host)
    if resolved == "local":
        ensure_local_env(quiet)
    return resolved


def say_why_not_docker(asked: str, resolved: str, docker_host: str | None) -> None:
    """"auto" that fell back from an engine the user named (DOCKER_HOST, --docker-host,
    DOCKER_CONTEXT): say why it is not used, not only "local"."""
    from ..sandboxing.docker import docker_problem

    named = docker_host or os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT")
    if asked == "auto" and resolved == "local" and named:
        why = docker_problem(docker_host=docker_host)
        click.echo(f"agentic-vision: note: using the local sandbox, not Docker: {why}", err=True)


def ensure_local_env(quiet: bool) -> None:
    from ..sandboxing.bubblewrap import SETUP_HINT
    from ..sandboxing.environment import env_is_current
    from ..paths import sandbox_env_dir

    if os.environ.get("AGENTIC_VISION_SANDBOX_PYTHON") or env_is_current():
        return
    built = (sandbox_env_dir() / "agentic-vision-requirements.sha256").exists()
    if os.environ.get(AUTO_SETUP) == "1":
        click.echo("setting up the local sandbox's library environment (once, a few minutes)", err=True)
        from .setup_progress import build_sandbox_env
        from .verbosity import current

        build_sandbox_env(verbose=current().verbose > 0)
        return
    if not built:
        raise SandboxUnavailable(SETUP_HINT)
    if not quiet:
        click.echo("agentic-vision: note: the sandbox's library environment is out of date with this "
                   "version's list: run 'agentic-vision sandbox setup'", err=True)
