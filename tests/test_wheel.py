"""`pip install agentic-vision` is the whole product: the built wheel, installed
plainly into a fresh venv and used from another folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agentic_vision.paths import sandbox_env_dir
from conftest import require, require_docker, sample

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv with the wheel built from this checkout (and its dependencies)."""
    root = tmp_path_factory.mktemp("wheel")
    # The two children the network guard lets out: pip builds the wheel in an isolated build environment
    # and installs it with its dependencies, both from the package index pip is configured with (a registry,
    # or a local mirror), as a user's pip would.
    unguarded = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIC_VISION_NETGUARD")}
    unguarded.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=600, env=unguarded)
    [wheel] = (root / "dist").glob("agentic_vision-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    bin_dir = root / "venv" / "bin"
    done = subprocess.run([str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=900, env=unguarded)
    assert done.returncode == 0, done.stderr[-2000:]
    return bin_dir


def run(bin_dir: Path, *args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTIC_VISION_", "GEMINI", "GOOGLE_", "OPENAI", "PIP_"))}
    clean.pop("PYTHONPATH", None)
    return subprocess.run([str(bin_dir / "agentic-vision"), *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={**clean, **(env or {})})


def test_the_installed_command_runs_from_another_folder(installed, tmp_path):
    assert run(installed, "--version", cwd=tmp_path).stdout.startswith("agentic-vision, version ")
    where = subprocess.run([str(installed / "python"), "-c", "import agentic_vision; print(agentic_vision.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(installed.parent) in where  # the installed copy, not this checkout


def test_without_a_sandbox_environment_it_says_to_set_one_up(installed, tmp_path):
    result = run(installed, "exec", "--sandbox", "local", "print(1)", cwd=tmp_path,
                 env={"AGENTIC_VISION_HOME": str(tmp_path / "state")})
    assert result.returncode == 3
    assert result.stderr == ("agentic-vision: the local sandbox's library environment is not set up: run "
                             "'agentic-vision sandbox setup' (once, a few minutes) or use --sandbox docker\n")


def test_with_one_the_installed_runtime_runs_code_with_the_libraries(installed, tmp_path):
    require((sandbox_env_dir() / "bin" / "python").exists(),
            "the local sandbox's library environment ('agentic-vision sandbox setup')")
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    code = "import numpy, pypdfium2\nfrom PIL import Image\nprint(numpy.asarray(Image.open('coins.png')).shape)"
    result = run(installed, "exec", "--sandbox", "local", "--input", "coins.png", code, cwd=tmp_path,
                 env={"AGENTIC_VISION_HOME": str(sandbox_env_dir().parent)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "(303, 384)\n"


@pytest.mark.skipif(not (sandbox_env_dir() / "bin" / "python").exists(), reason="no sandbox environment built")
def test_the_installed_package_adds_a_library_and_runs_it(installed, tmp_path):
    """`sandbox setup --with` from the wheel, offline (a wheel the test writes, --no-index),
    into a fresh home on the real default environment; then exec --libraries uses it."""
    from tiny_wheel import NAME, isolated_pip_env, make_wheel

    make_wheel(tmp_path / "wheels")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "sandbox-env").symlink_to(sandbox_env_dir())
    env = {**isolated_pip_env({}), "AGENTIC_VISION_HOME": str(tmp_path / "home")}
    setup = run(installed, "sandbox", "setup", "--with", NAME, "--find-links", str(tmp_path / "wheels"), "--no-index",
                cwd=tmp_path, env=env)
    assert setup.returncode == 0, setup.stderr
    ran = run(installed, "exec", "--sandbox", "local", "--no-guard", "--libraries", NAME,
              f"import {NAME}; print({NAME}.hello())", cwd=tmp_path, env=env)
    assert (ran.returncode, ran.stdout) == (0, "hello from avlibtest\n"), ran.stderr


def test_local_models_need_no_extra(installed, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "coins.png").write_bytes(sample("coins.png").read_bytes())
    result = run(installed, "ask", "coins.png", "How many?", "--model", "ollama:qwen2.5vl", cwd=tmp_path,
                 env={"OLLAMA_HOST": f"127.0.0.1:{port}"})
    assert result.returncode == 1
    assert result.stderr.startswith(f"agentic-vision: cannot reach the model API at http://127.0.0.1:{port}/v1")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.docker
def test_the_installed_package_builds_the_docker_image(installed, tmp_path):
    """`sandbox build` from the wheel sends the wheel's copy of Dockerfile.sandbox and
    its installed sandbox files: the image gets the checkout's hash, and the installed
    package then runs code in it."""
    require_docker()
    from agentic_vision.sandboxing.docker_engine import HASH_LABEL, connect, image_name, source_hash

    engine = connect()
    # The base of the checkout's image, so the build reuses its layers (a pip install otherwise).
    base = engine.api.inspect_image(image_name())["Config"]["Labels"]["org.agentic-vision.sandbox.base"]
    tag = f"agentic-vision/sandbox:wheel-test-{os.getpid()}"
    env = {"AGENTIC_VISION_DOCKER_IMAGE": tag}
    try:
        built = run(installed, "sandbox", "build", "--base-image", base, cwd=tmp_path, env=env)
        assert built.returncode == 0, built.stderr[-3000:]
        assert f"building {tag} from {base}" in built.stderr
        assert engine.api.inspect_image(tag)["Config"]["Labels"][HASH_LABEL] == source_hash()
        ran = run(installed, "exec", "--sandbox", "docker", "import numpy, pypdfium2; print(numpy.ones(3).sum())",
                  cwd=tmp_path, env=env)
        assert (ran.returncode, ran.stdout) == (0, "3.0\n"), ran.stderr
        again = run(installed, "sandbox", "build", "--base-image", base, cwd=tmp_path, env=env)
        assert again.returncode == 0 and "is current" in again.stderr, again.stderr
    finally:
        try:
            engine.api.remove_image(tag)
        except Exception:  # not built: nothing to remove
            pass
        engine.client.close()


@pytest.mark.skipif(not (sandbox_env_dir() / "bin" / "python").exists(), reason="no sandbox environment built")
def test_ask_renders_chosen_pdf_pages_from_the_installed_package(installed, tmp_path):
    """The jailed renderer finds the installed pypdfium2 and PIL, and its program ships in the wheel."""
    from fpdf import FPDF

    from agentic_vision.testing.gemini_server import ScriptedGemini

    pdf = FPDF()
    for n in range(1, 5):
        pdf.add_page()
        pdf.set_font("helvetica", size=30)
        pdf.cell(text=f"ROOM {n}")
    pdf.output(str(tmp_path / "drawing.pdf"))
    with ScriptedGemini(["Room 12 is 4.2 m wide."]) as server:
        result = run(installed, "ask", "drawing.pdf", "--page", "2-3", "--sandbox", "local", "How wide is room 12?",
                     cwd=tmp_path, env={"AGENTIC_VISION_HOME": str(sandbox_env_dir().parent), "GEMINI_API_KEY": "k",
                                        "GOOGLE_GEMINI_BASE_URL": server.url})
        [request] = server.requests
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Room 12 is 4.2 m wide."
    assert len(request.images()) == 2 and "drawing.pdf has 4 pages; pages 2, 3" in str(request.body)
