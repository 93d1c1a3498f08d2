"""Docker images with extra libraries: a thin layer FROM the default sandbox image.

``sandbox build --with PKG`` builds ``<default image>-libs-<hash>`` (e.g.
``agentic-vision/sandbox:latest-libs-1a2b3c4d5e6f``): pip installs the set
into the image's /opt/venv during the build, with the hosted libraries pinned
as constraints, and writes what it installed to /opt/agentic-vision/extras.json.
The default image is never changed.  The layer inherits the default image's
source-hash label, so a change of the sandbox's own files makes it stale like
the default image.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import tempfile
import threading
from pathlib import Path

import docker

from ..errors import InputError, SandboxUnavailable
from .docker_build import build_ca
from .docker_engine import HASH_LABEL, Engine, explain, image_name, inspect_image, source_hash
from .extras import LibrarySet, Manifest, PackageSource, pip_failure
from .runtime_files import requirements_file

LIBS_LABEL = "org.agentic-vision.libraries"  # the set's name, libs-<hash>
REQUESTED_LABEL = "org.agentic-vision.libraries.requested"  # JSON list of the requirements
MANIFEST = "/opt/agentic-vision/extras.json"
SCRIPT = Path(__file__).with_name("extras_manifest.py")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
USER root
COPY extras/ /tmp/extras/
ARG PIP_OPTIONS=""
ARG REQUESTED="[]"
RUN set -eu; \\
    if [ -s /tmp/extras/build-ca.pem ]; then export PIP_CERT=/tmp/extras/build-ca.pem; fi; \\
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \\
      /opt/venv/bin/python -m pip install --no-input --progress-bar off --report /tmp/extras/report.json \\
      -c /tmp/extras/constraints.txt $PIP_OPTIONS -r /tmp/extras/requirements.txt; \\
    AGENTIC_VISION_MPLCONFIG_SEED= /opt/venv/bin/python /tmp/extras/manifest.py /tmp/extras/report.json "$REQUESTED" \\
      > /opt/agentic-vision/extras.json; \\
    chmod a+r /opt/agentic-vision/extras.json; \\
    rm -rf /tmp/extras
USER sandbox
"""


def extras_image_name(libs: LibrarySet, base: str | None = None) -> str:
    base = base or image_name()
    repo, _, tag = base.rpartition(":") if ":" in base.split("/")[-1] else (base, "", "latest")
    return f"{repo}:{tag}-{libs.name}"


def image_problem(engine: Engine, libs: LibrarySet) -> str | None:
    """Why the set's image cannot be used (one line with the command to run), or None."""
    name = extras_image_name(libs)
    try:
        info = engine.api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return (f"the libraries {libs} are not built for the Docker sandbox (no image {name} on the engine at "
                f"{engine.address}): run {libs.quoted('build')}")
    except Exception as exc:
        return str(explain(exc, engine.address))
    labels = (info.get("Config") or {}).get("Labels") or {}
    want = source_hash()
    if want and labels.get(HASH_LABEL) not in (want, "unknown", ""):
        return f"the image {name} of the libraries {libs} was built from older sandbox files: run {libs.quoted('build')} again"
    return None


_manifests: dict[str, Manifest] = {}
_lock = threading.Lock()


def read_manifest(engine: Engine, image_id: str) -> Manifest:
    """What the image's extras build installed (from a created, never started, container)."""
    with _lock:
        if image_id in _manifests:
            return _manifests[image_id]
    try:
        cid = engine.api.create_container(image_id, command=["true"], network_disabled=True)["Id"]
        try:
            stream, _ = engine.api.get_archive(cid, MANIFEST)
            data = b"".join(stream)
        finally:
            engine.api.remove_container(cid, force=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile(tar.getmembers()[0])
            manifest = Manifest.from_dict(json.loads(member.read(4 * 2**20)))
    except (docker.errors.APIError, ValueError, tarfile.TarError, IndexError, AttributeError):
        manifest = Manifest([])  # an image without one: nothing to list
    with _lock:
        _manifests[image_id] = manifest
    return manifest


def list_images(engine: Engine) -> list[dict]:
    """The extras images on the engine (next to the default one), for `sandbox info`."""
    base = image_name()
    repo = base.rpartition(":")[0] if ":" in base.split("/")[-1] else base
    out = []
    base_size = 0
    try:
        base_size = int(engine.api.inspect_image(base).get("Size") or 0)
    except docker.errors.APIError:
        pass
    for image in engine.api.images(filters={"label": LIBS_LABEL}):
        tags = [t for t in image.get("RepoTags") or [] if t.startswith(repo + ":")]
        if not tags:
            continue
        labels = image.get("Labels") or {}
        manifest = read_manifest(engine, image["Id"])
        size = int(image.get("Size") or 0)
        out.append({"image": tags[0], "name": labels.get(LIBS_LABEL), "size_bytes": size,
                    "layer_bytes": max(size - base_size, 0) if base_size else None,
                    "requested": json.loads(labels.get(REQUESTED_LABEL) or "[]"), "installed": manifest.installed})
    return sorted(out, key=lambda d: d["image"])


def _context(tar_path: Path, libs: LibrarySet, wheel_dirs: list[Path], ca: Path | None) -> None:
    def add_bytes(tar, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(tar_path, "w") as tar:
        add_bytes(tar, "Dockerfile", DOCKERFILE.encode())
        add_bytes(tar, "extras/requirements.txt", "".join(r + "\n" for r in libs.requirements).encode())
        tar.add(requirements_file(), arcname="extras/constraints.txt")
        tar.add(SCRIPT, arcname="extras/manifest.py")
        if ca is not None:
            tar.add(ca, arcname="extras/build-ca.pem")
        seen = set()
        for folder in wheel_dirs:
            for f in sorted(folder.iterdir()):
                if f.is_file() and f.name not in seen:
                    seen.add(f.name)
                    tar.add(f, arcname=f"extras/wheels/{f.name}")


def build_extras_image(engine: Engine, libs: LibrarySet, source: PackageSource = PackageSource(), *,
                       force: bool = False, echo=print) -> str:
    """Builds the set's image on top of the default one unless it is current; returns its name."""
    source.check()
    base = image_name()
    base_info = inspect_image(engine, base)  # not built or stale: one line saying 'sandbox build'
    target = extras_image_name(libs, base)
    if not force and image_problem(engine, libs) is None:
        if _built_on(engine.api.inspect_image(target), base_info):
            echo(f"{target} is current: nothing to build (--force rebuilds)")
            return target
    local_dirs = [Path(d) for d in source.find_links if "://" not in d]
    wheelhouse = os.environ.get("AGENTIC_VISION_WHEELHOUSE")
    if wheelhouse:
        if not Path(wheelhouse).is_dir():
            raise SandboxUnavailable(f"the wheelhouse {wheelhouse} (AGENTIC_VISION_WHEELHOUSE) is not a directory")
        local_dirs.append(Path(wheelhouse))
    links = [d for d in source.find_links if "://" in d] + (["/tmp/extras/wheels"] if local_dirs else [])
    options = source.pip_args(find_links=links)
    # Without an index the build needs no network at all.
    network = "none" if source.no_index else os.environ.get("AGENTIC_VISION_BUILD_NETWORK", "host")
    echo(f"building {target} from {base} with {libs} on {engine.address} (network {network}) ...")
    lines: list[str] = []
    steps: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="agentic-vision-extras-") as tmp:
            context = Path(tmp) / "context.tar"
            _context(context, libs, local_dirs, build_ca())
            with open(context, "rb") as f:
                stream = engine.api.build(
                    fileobj=f, custom_context=True, tag=target, network_mode=network, rm=True, forcerm=True,
                    decode=True, timeout=None,
                    buildargs={"BASE_IMAGE": base, "PIP_OPTIONS": " ".join(options),
                               "REQUESTED": json.dumps(list(libs.requirements))},
                    labels={LIBS_LABEL: libs.name, REQUESTED_LABEL: json.dumps(list(libs.requirements)),
                            f"{LIBS_LABEL}.base": base_info["Id"]},
                )
                for chunk in stream:
                    # The classic builder wraps what RUN writes to stderr in ANSI colours.
                    text = ANSI.sub("", chunk.get("stream", ""))
                    for line in text.splitlines():
                        lines.append(line)
                        m = re.match(r"^ ---> ([0-9a-f]{12,})$", line)
                        if m:
                            steps.append(m.group(1))
                        if line.strip():
                            echo(f"    {line.rstrip()}")
                    if "error" in chunk:
                        raise _Failed(chunk["error"].strip())
    except _Failed as failed:
        _remove_steps(engine, steps, base_info["Id"])
        output = "\n".join(lines)
        if "ERROR:" in output:
            raise InputError(pip_failure(output, libs, "no image was built", source.no_index)) from None
        raise SandboxUnavailable(f"the build of {target} failed: {failed}") from None
    except docker.errors.APIError as exc:
        raise SandboxUnavailable(f"the build of {target} failed: {exc.explanation or exc}") from None
    except (InputError, SandboxUnavailable):
        raise
    except Exception as exc:
        raise explain(exc, engine.address) from None
    info = engine.api.inspect_image(target)
    manifest = read_manifest(engine, info["Id"])
    layer = (int(info.get("Size") or 0) - int(base_info.get("Size") or 0)) // 10**6
    echo(f"done: {target} (+{layer} MB on {base}): {manifest.summary() or 'nothing beyond the sandbox'}")
    return target


class _Failed(Exception):
    pass


def _built_on(have: dict, base_info: dict) -> bool:
    return ((have.get("Config") or {}).get("Labels") or {}).get(f"{LIBS_LABEL}.base") == base_info["Id"]


def _remove_steps(engine: Engine, steps: list[str], base_id: str) -> None:
    """Removes the untagged intermediate images a failed build left (never the base or a tagged one)."""
    for step in reversed(steps):
        if base_id.removeprefix("sha256:").startswith(step):
            continue
        try:
            info = engine.api.inspect_image(step)
            if [t for t in info.get("RepoTags") or [] if t != "<none>:<none>"]:
                continue
            engine.api.remove_image(step, noprune=True)
        except docker.errors.APIError:
            pass  # in use by another image, or gone already
