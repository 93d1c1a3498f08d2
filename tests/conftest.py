"""Shared fixtures: real sandboxes, real images that ship inside packages."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

SKIMAGE_DATA = None
try:
    import skimage.data

    SKIMAGE_DATA = Path(skimage.data.__file__).parent
except ImportError:  # pragma: no cover - the test extra installs it
    pass


def sample(name: str) -> Path:
    """An image or file shipped inside scikit-image or matplotlib."""
    candidates = []
    if SKIMAGE_DATA is not None:
        candidates.append(SKIMAGE_DATA / name)
    import matplotlib

    candidates.append(Path(matplotlib.get_data_path()) / "sample_data" / name)
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(name)


def docker_wanted() -> bool:
    return os.environ.get("AGENTIC_VISION_TEST_DOCKER", "auto") != "0"


def sandbox_kinds() -> list:
    kinds = ["local"]
    if docker_wanted():
        kinds.append(pytest.param("docker", marks=pytest.mark.docker))
    return kinds


def require_docker() -> None:
    """Skips the test without a working engine and image, or fails it where Docker is required (CI)."""
    if not docker_wanted():
        pytest.skip("Docker tests are switched off (AGENTIC_VISION_TEST_DOCKER=0)")
    try:
        from agentic_vision.sandboxing.docker import docker_problem
    except ImportError:
        problem = "the Docker sandbox is not part of this build"
    else:
        problem = docker_problem()
    if problem:
        if os.environ.get("AGENTIC_VISION_TEST_DOCKER") == "1":
            pytest.fail(f"Docker is required here but unavailable: {problem}")
        pytest.skip(f"Docker unavailable: {problem}")


@pytest.fixture(params=sandbox_kinds())
def sandbox_kind(request) -> str:
    kind = request.param
    if kind == "docker":
        require_docker()
    return kind


@pytest.fixture
def open_sandbox(sandbox_kind):
    """open_sandbox(inputs=..., guard=..., timeout=...) -> a session closed after the test."""
    from agentic_vision import open_session

    sessions = []

    def opener(**kwargs):
        session = open_session(sandbox_kind, **kwargs)
        sessions.append(session)
        return session

    yield opener
    for session in sessions:
        session.close()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A real photograph (JPEG) under a plain name."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(sample("rocket.jpg").read_bytes())
    return path


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.size
