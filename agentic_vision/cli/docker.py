"""`agentic-vision sandbox build` and `sandbox check`: the Docker sandbox's image.

The build itself is scripts/build-sandbox-image.sh (it starts the engine if
needed, picks the base image, skips a current image and prints its progress);
these commands run it from the checkout and check what the image holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from ..sandboxing.docker import docker_cli, image_name
from ..sandboxing.executors import get_executor
from ..sandboxing.session import Session
from ..sandboxing.runtime_files import CHECKOUT
from ..errors import SandboxUnavailable

BUILD_SCRIPT = CHECKOUT / "scripts" / "build-sandbox-image.sh"


@click.command("build")
@click.option("--force", is_flag=True, help="Build even if the image is current.")
@click.option("--base-image", default=None, metavar="IMG",
              help="Base image (default python:3.11-slim, else a local Debian image).")
def build_command(force, base_image) -> None:
    """Build the Docker sandbox image (agentic-vision/sandbox:latest)."""
    if not BUILD_SCRIPT.is_file():
        raise SandboxUnavailable(
            "building the sandbox image needs a source checkout: clone the agentic-vision repository "
            "and run 'agentic-vision sandbox build' (or scripts/build-sandbox-image.sh) there"
        )
    env = dict(os.environ)
    env.setdefault("AGENTIC_VISION_IMAGE", image_name())  # the tag the Docker sandbox will use
    if base_image:
        env["AGENTIC_VISION_BASE_IMAGE"] = base_image
    argv = ["bash", str(BUILD_SCRIPT)] + (["--force"] if force else [])
    code = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL).returncode
    if code != 0:
        raise SandboxUnavailable(f"the sandbox image was not built (the build script exited with {code}; see above)")


@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check_command(as_json) -> None:
    """Import every library inside the Docker sandbox image and report it."""
    executor = get_executor("docker", pool_size=0)
    with Session(executor, [], 300, guard=False) as session:
        libraries = session.libraries
    size = int(docker_cli("image", "inspect", "-f", "{{.Size}}", executor.image).stdout.strip() or 0)
    missing = sorted(name for name, status in libraries.items() if not status.get("available"))
    if as_json:
        click.echo(json.dumps({
            "image": executor.image,
            "image_id": executor.image_id,
            "size_bytes": size,
            "libraries": libraries,
            "missing": missing,
        }, indent=2))
    else:
        click.echo(f"image: {executor.image} ({executor.image_id[7:19]}, {size / 1e6:.0f} MB)")
        width = max(len(name) for name in libraries)
        click.echo(f"{'name':<{width}}  {'version':<14}  ok")
        for name, status in libraries.items():
            ok = "yes" if status.get("available") else f"NO  {status.get('error', '')}"
            click.echo(f"{name:<{width}}  {status.get('version') or '-':<14}  {ok}")
        click.echo(f"{len(libraries) - len(missing)} of {len(libraries)} libraries import")
    if missing:
        sys.exit(1)
