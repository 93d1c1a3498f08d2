"""Building the sandbox image through the Engine API (`agentic-vision sandbox build`).

The engine may be remote, so the build context travels as a tar stream:
Dockerfile.sandbox, sandbox/ (a checkout's, or the installed package's: see
``runtime_files.image_sources``), a CA bundle for pip behind a TLS-intercepting
proxy, an optional wheelhouse.  The image is labelled with the source hash
(see ``image_source``) and its base; a current image is not
rebuilt.  The API's builder is the classic one: Dockerfile.sandbox needs no
BuildKit feature.

Only the local Debian base image (agentic-vision/base:bookworm, for machines
that cannot pull python:3.11-slim) is made outside the API, by
scripts/make-base-image.sh: it runs debootstrap on this machine (root, host
tools), which no engine call can do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Callable

import docker

from ..errors import SandboxUnavailable
from .docker_engine import HASH_LABEL, Engine, explain
from .image_source import hash_of
from .runtime_files import build_script, image_sources

DEFAULT_BASE = "python:3.11-slim"
LOCAL_BASE = "agentic-vision/base:bookworm"
BASE_LABEL = "org.agentic-vision.sandbox.base"
PULL_TIMEOUT = 300


def _has_image(engine: Engine, name: str) -> bool:
    try:
        engine.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(engine: Engine, name: str, echo) -> bool:
    repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
    echo(f"pulling {name} ...")
    failed: list[BaseException] = []

    def pull() -> None:
        try:
            engine.api.pull(repo, tag=tag)
        except Exception as exc:  # no registry reachable, an unknown name
            failed.append(exc)

    # The SDK's pull has no timeout, and a registry behind a black hole never answers.
    puller = threading.Thread(target=pull, daemon=True)
    puller.start()
    puller.join(PULL_TIMEOUT)
    if puller.is_alive() or failed:
        why = f"no answer within {PULL_TIMEOUT} s" if puller.is_alive() else _last_line(failed[0])
        echo(f"cannot pull {name}: {why}")
        return False
    return _has_image(engine, name)


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def choose_base(engine: Engine, base: str | None, echo) -> str:
    """The given base (made or pulled when missing), else python:3.11-slim, else the local Debian base."""
    if base:
        if _has_image(engine, base):
            return base
        if base.startswith("agentic-vision/base:"):
            make_local_base(engine, base, echo)
            return base
        if _pull(engine, base, echo):
            return base
        raise SandboxUnavailable(f"the base image {base} is not on the engine at {engine.address} and cannot be pulled")
    if _has_image(engine, DEFAULT_BASE):
        return DEFAULT_BASE
    if os.environ.get("AGENTIC_VISION_NO_PULL") != "1" and _pull(engine, DEFAULT_BASE, echo):
        return DEFAULT_BASE
    echo(f"{DEFAULT_BASE} is not here and cannot be pulled: using the local Debian base {LOCAL_BASE}")
    if not _has_image(engine, LOCAL_BASE):
        make_local_base(engine, LOCAL_BASE, echo)
    return LOCAL_BASE


def make_local_base(engine: Engine, tag: str, echo) -> None:
    # debootstrap runs on this machine and `docker import`s the tree: only
    # possible with a local engine, root and the script (checkout or wheel).
    make_base = build_script("make-base-image.sh")
    if make_base is None or not engine.local:
        raise SandboxUnavailable(
            f"the base image {tag} is missing on the engine at {engine.address}: make it on that engine's machine "
            "with scripts/make-base-image.sh, or let the engine pull python:3.11-slim"
        )
    echo(f"making {tag} with {make_base.name} (debootstrap) ...")
    env = dict(os.environ, BASE_TAG=tag, DOCKER_HOST=engine.address)
    if subprocess.run(["bash", str(make_base)], env=env, stdin=subprocess.DEVNULL).returncode != 0:
        raise SandboxUnavailable(f"the base image {tag} was not made (see the output of {make_base.name} above)")


def current_base(engine: Engine, image: str, want: str) -> str | None:
    """The base ``image`` was built on, when it is built from these files and that base is
    still on the engine; else None."""
    try:
        labels = (engine.api.inspect_image(image).get("Config") or {}).get("Labels") or {}
    except docker.errors.ImageNotFound:
        return None
    base = labels.get(BASE_LABEL)
    return base if labels.get(HASH_LABEL) == want and base and _has_image(engine, base) else None


def is_current(engine: Engine, image: str, base: str, want: str) -> bool:
    try:
        labels = (engine.api.inspect_image(image).get("Config") or {}).get("Labels") or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get(HASH_LABEL) == want and labels.get(BASE_LABEL) == base


def build_ca() -> Path | None:
    """The CA bundle pip inside the build should trust (a TLS-intercepting proxy's, say), or None."""
    chosen = os.environ.get("AGENTIC_VISION_BUILD_CA")
    if chosen == "none":
        return None
    if chosen:
        if not Path(chosen).is_file():
            raise SandboxUnavailable(f"the CA bundle {chosen} (AGENTIC_VISION_BUILD_CA) does not exist")
        return Path(chosen)
    candidates = [pip_cert(), os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                  os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"]
    for c in candidates:
        if c and Path(c).is_file() and Path(c).stat().st_size:
            return Path(c)
    return None


def pip_cert() -> str | None:
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".cert"):
            return value.strip().strip("'\"")
    return None


def write_context(tar_path: Path, files: dict[str, Path], ca: Path | None, wheelhouse: Path | None) -> None:
    with tarfile.open(tar_path, "w") as tar:
        for name in sorted(files):
            tar.add(files[name], arcname=name, recursive=False)
        if ca is not None:
            tar.add(ca, arcname="build-ca.pem")
        if wheelhouse is not None:
            for wheel in sorted(wheelhouse.iterdir()):
                tar.add(wheel, arcname=f"wheelhouse/{wheel.name}")


def build_files() -> dict[str, Path]:
    """What the image is built from (checkout or installed package); a one-line error when absent."""
    files = image_sources()
    if files is None:
        raise SandboxUnavailable(
            "this installation has no Dockerfile.sandbox to build the sandbox image from: reinstall "
            "agentic-vision from a wheel or sdist (pip install --force-reinstall agentic-vision), or run "
            "'agentic-vision sandbox build' in a clone of the repository"
        )
    return files


def build_image(engine: Engine, image: str, *, base: str | None = None, force: bool = False,
                echo: Callable[[str], None] = print) -> bool:
    """Builds image on the engine unless it is current; returns whether it built."""
    files = build_files()
    want = hash_of(files)
    try:
        base = base or os.environ.get("AGENTIC_VISION_BASE_IMAGE")
        built_on = None if force else current_base(engine, image, want)
        if built_on and base in (None, built_on):  # current: no base to look for, no registry to ask
            echo(f"{image} is current (hash {want[:12]}, base {built_on}): nothing to build (--force rebuilds)")
            return False
        base = choose_base(engine, base, echo)
        if not force and is_current(engine, image, base, want):
            echo(f"{image} is current (hash {want[:12]}, base {base}): nothing to build (--force rebuilds)")
            return False
        wheels = os.environ.get("AGENTIC_VISION_WHEELHOUSE")
        wheelhouse = Path(wheels) if wheels else None
        if wheelhouse is not None and not wheelhouse.is_dir():
            raise SandboxUnavailable(f"the wheelhouse {wheelhouse} is not a directory")
        ca = build_ca()
        network = os.environ.get("AGENTIC_VISION_BUILD_NETWORK", "host")
        echo(f"building {image} from {base} on {engine.address} (hash {want[:12]}, network {network}) ...")
        with tempfile.TemporaryDirectory(prefix="agentic-vision-build-") as tmp:
            context = Path(tmp) / "context.tar"
            write_context(context, files, ca, wheelhouse)
            with open(context, "rb") as f:
                stream = engine.api.build(
                    fileobj=f, custom_context=True, dockerfile="Dockerfile.sandbox", tag=image,
                    buildargs={"BASE_IMAGE": base, "SANDBOX_HASH": want, "WHEELHOUSE": "1" if wheelhouse else "0"},
                    network_mode=network, rm=True, decode=True, timeout=None,
                )
                for chunk in stream:
                    if "error" in chunk:
                        raise SandboxUnavailable(f"the build of {image} failed: {chunk['error'].strip()}")
                    text = chunk.get("stream", "").rstrip()
                    if text:
                        echo(f"    {text}")
    except SandboxUnavailable:
        raise
    except docker.errors.APIError as exc:
        raise SandboxUnavailable(f"the build of {image} failed: {exc.explanation or exc}") from None
    except Exception as exc:
        raise explain(exc, engine.address) from None
    size = engine.api.inspect_image(image).get("Size", 0)
    echo(f"done: {image}, {size // 10**6} MB")
    return True
