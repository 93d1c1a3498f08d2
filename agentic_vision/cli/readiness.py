"""What `ask` and `exec` make sure of before any sandbox starts: the sandbox
chosen, and for the local one its library environment (set up with progress
when allowed, else one line that says how)."""

from __future__ import annotations

import os

import click

from ..errors import SandboxUnavailable

AUTO_SETUP = "AGENTIC_VISION_AUTO_SETUP"  # ./av sets it: a checkout sets itself up


def choose_sandbox(kind: str, quiet: bool, docker_host: str | None = None) -> str:
    """The sandbox kind to use ("auto" resolved), with the local environment ready."""
    from ..sandboxing.executors import check_docker_host, resolve_kind

    check_docker_host(kind, docker_host, cli=True)
    resolved = resolve_kind(kind, docker_host)
    if resolved == "local":
        ensure_local_env(quiet)
    return resolved


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
