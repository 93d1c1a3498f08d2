"""`agentic-vision sandbox build` and `sandbox check`: the Docker sandbox's image and engine.

Both talk to the engine through the Engine API (``--docker-host``,
``DOCKER_HOST``, a Docker context, or the local socket); neither needs the
``docker`` CLI.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import click

from ..errors import SandboxUnavailable
from ..sandboxing.docker_build import build_files, build_image
from ..sandboxing.extras_image import build_extras_image, list_images
from .libraries import extras_from, extras_options, libraries_option
from ..sandboxing.docker_engine import DEFAULT_ADDRESS, START_SCRIPT, connect, image_name, inspect_image, settings
from ..sandboxing.executors import get_executor
from ..sandboxing.session import Session


def sandbox_option(help: str | None = None):
    """``--sandbox auto|local|docker`` (AGENTIC_VISION_SANDBOX), the same on every command."""
    return click.option("--sandbox", type=click.Choice(["auto", "local", "docker"]), default="auto",
                        show_default=True, envvar="AGENTIC_VISION_SANDBOX", show_envvar=True, help=help)


docker_host_option = click.option(
    "--docker-host", default=None, metavar="URL",
    help="Docker engine for the Docker sandbox, e.g. tcp://host:2376 or ssh://user@host[:port] "
         "(default: DOCKER_HOST, the current Docker context, else the local socket).",
)


def connect_or_start(docker_host: str | None, echo):
    """The engine; a local default engine that is down is started from the checkout's script first."""
    try:
        return connect(docker_host)
    except SandboxUnavailable:
        _, address, _ = settings(docker_host)
        if address != DEFAULT_ADDRESS or not START_SCRIPT.is_file():
            raise
    echo(f"no engine answers at {DEFAULT_ADDRESS}: starting one with {START_SCRIPT.name}")
    if subprocess.run(["bash", str(START_SCRIPT)], stdin=subprocess.DEVNULL).returncode != 0:
        raise SandboxUnavailable(f"the Docker engine did not start (see the output of {START_SCRIPT.name} above)")
    return connect(docker_host)


@click.command("build")
@click.option("--force", is_flag=True, help="Build even if the image is current.")
@click.option("--base-image", default=None, metavar="IMG",
              help="Base image (default python:3.11-slim, else a local Debian image).")
@docker_host_option
@extras_options
def build_command(force, base_image, docker_host, with_, requirements, find_links, index_url, no_index) -> None:
    """Build the Docker sandbox image (agentic-vision/sandbox:latest) on the engine; with
    --with or --requirements, an image with those extra libraries on top of it
    (agentic-vision/sandbox:latest-libs-HASH)."""
    libs, source = extras_from(with_, requirements, find_links, index_url, no_index)
    if libs and base_image:
        raise click.UsageError("--base-image is for the default image; --with builds on top of it")
    build_files()  # before anything else: without them there is nothing to build
    echo = lambda line: click.echo(f"[sandbox build] {line}", err=True)  # noqa: E731
    engine = connect_or_start(docker_host, echo)
    if libs:
        build_extras_image(engine, libs, source, force=force, echo=echo)
        click.echo(f"use it with: --sandbox docker --libraries {' --libraries '.join(shlex.quote(r) for r in libs.requirements)}",
                   err=True)
        return
    build_image(engine, image_name(), base=base_image, force=force, echo=echo)


@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@docker_host_option
@libraries_option
def check_command(as_json, docker_host, libraries) -> None:
    """Import every library inside the Docker sandbox image (with --libraries, the image of
    those extras) and report it."""
    executor = get_executor("docker", pool_size=0, docker_host=docker_host, libraries=libraries)
    with Session(executor, [], 300, guard=False) as session:
        libraries = session.libraries
    size = int(executor.api.inspect_image(executor.image_id).get("Size") or 0)
    missing = sorted(name for name, status in libraries.items() if not status.get("available"))
    if as_json:
        click.echo(json.dumps({
            "image": executor.image,
            "image_id": executor.image_id,
            "size_bytes": size,
            "engine": executor.engine.describe(),
            "libraries": libraries,
            "missing": missing,
        }, indent=2))
    else:
        click.echo(f"image: {executor.image} ({executor.image_id[7:19]}, {size / 1e6:.0f} MB)")
        click.echo(f"engine: {engine_line(executor.engine.describe())}")
        width = max(len(name) for name in libraries)
        click.echo(f"{'name':<{width}}  {'version':<14}  ok")
        for name, status in libraries.items():
            ok = "yes" if status.get("available") else f"NO  {status.get('error', '')}"
            click.echo(f"{name:<{width}}  {status.get('version') or '-':<14}  {ok}")
        click.echo(f"{len(libraries) - len(missing)} of {len(libraries)} libraries import")
    if missing:
        sys.exit(1)


def engine_line(d: dict) -> str:
    where = "local" if d["local"] else "remote"
    return f"{d['address']} ({where}, over {d['transport']}, from {d['from']}): Docker {d['version']}, API {d['api_version']}, {d['os']}"


def docker_info(docker_host: str | None) -> dict:
    """The engine the Docker sandbox would talk to and whether its image is ready (never raises)."""
    try:
        engine = connect(docker_host)
    except SandboxUnavailable as exc:
        return {"problem": str(exc)}
    found = {"engine": engine.describe(), "image": image_name()}
    try:
        inspect_image(engine, image_name())
        found["extras"] = list_images(engine)
    except SandboxUnavailable as exc:
        found["problem"] = str(exc)
    finally:
        engine.client.close()
    return found
