"""The Docker sandbox itself: the image, the container's hardening, its lifetime.

What sessions do (and the attacks they withstand) is tested on every sandbox
kind in test_session.py and test_containment.py; this file is what only the
Docker executor has: an image, `docker run` flags, containers to clean up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import png_size

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine():
    """An engine that answers and a current image (tests of start-up errors need neither)."""
    if os.environ.get("AGENTIC_VISION_TEST_DOCKER", "auto") == "0":
        pytest.skip("Docker tests are switched off (AGENTIC_VISION_TEST_DOCKER=0)")
    from agentic_vision.sandboxing.docker import docker_problem

    problem = docker_problem()
    if problem:
        if os.environ.get("AGENTIC_VISION_TEST_DOCKER") == "1":
            pytest.fail(f"Docker is required here but unavailable: {problem}")
        pytest.skip(f"Docker unavailable: {problem}")


@pytest.fixture
def executor(engine):
    from agentic_vision.sandboxing.docker import DockerExecutor

    ex = DockerExecutor(pool_size=0)
    yield ex
    ex.shutdown()


def session_on(executor, **kwargs):
    from agentic_vision.sandboxing.session import Session

    return Session(executor, kwargs.get("inputs", []), kwargs.get("timeout", 20), kwargs.get("guard", False))


def container_exists(name: str) -> bool:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{name}$"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "agentic_vision", *args],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )


# -- the image ----------------------------------------------------------------------------


def test_all_37_libraries_import_in_the_image(engine):
    from click.testing import CliRunner

    from agentic_vision.cli.docker import check_command
    from agentic_vision.sandboxing.runtime_files import library_specs

    result = CliRunner().invoke(check_command, ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(library_specs()) == 37
    assert sorted(report["libraries"]) == sorted(spec["name"] for spec in library_specs())
    missing = {name: s.get("error") for name, s in report["libraries"].items() if not s["available"]}
    assert missing == {}
    assert report["size_bytes"] > 100_000_000


def test_source_hash_matches_the_build_script():
    from agentic_vision.sandboxing.docker import source_hash

    script = subprocess.run([str(ROOT / "scripts" / "build-sandbox-image.sh"), "--print-hash"],
                            capture_output=True, text=True, check=True)
    assert source_hash() == script.stdout.strip()


# -- hardening --------------------------------------------------------------------------


def test_the_container_is_hardened(executor):
    with session_on(executor) as session:
        name = session.container
        info = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]
        inside = session.run(textwrap.dedent("""
            import os, resource
            status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\\t' in line)
            print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['NoNewPrivs'].strip(),
                  resource.getrlimit(resource.RLIMIT_NOFILE)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0])
        """)).output
    host = info["HostConfig"]
    limits = executor.limits
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert not host.get("Binds") and not host.get("Mounts") and info["Mounts"] == []
    assert not host.get("Devices")
    assert info["Config"]["User"] == "10001:10001"
    assert host["PidsLimit"] == limits.max_processes
    assert host["Memory"] == host["MemorySwap"] == limits.memory_bytes
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NanoCpus"] == int(executor.cpus * 1e9)
    assert host["Init"] is True and host["AutoRemove"] is True
    assert host["LogConfig"]["Type"] == "none"  # the protocol is not copied to a log file
    assert f"size={limits.workdir_bytes}" in host["Tmpfs"]["/work"]
    assert f"size={limits.tmp_bytes}" in host["Tmpfs"]["/tmp"]
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {
        "nofile": limits.open_files, "fsize": limits.file_size_bytes, "core": 0,
    }
    labels = info["Config"]["Labels"]
    assert labels["org.agentic-vision.session"] == "1"
    assert labels["org.agentic-vision.owner"] == str(os.getpid())
    assert inside.split() == ["10001", "10001", "0000000000000000", "1", str(limits.open_files), str(limits.file_size_bytes)]


# -- lifetime -----------------------------------------------------------------------------


def test_the_container_is_gone_after_close(executor):
    session = session_on(executor)
    name = session.container
    assert container_exists(name)
    session.close()
    assert not container_exists(name)


def test_the_container_is_gone_after_a_timeout(executor):
    with session_on(executor, timeout=1.5) as session:
        first = session.container
        result = session.run("while True:\n    pass")
        assert result.outcome == "OUTCOME_DEADLINE_EXCEEDED"
        assert not container_exists(first)
        assert session.run("print('again')").output == "again\n"
        assert session.container != first  # a new container, never the old one


def test_shutdown_removes_pooled_and_busy_containers(engine):
    from agentic_vision.sandboxing.docker import DockerExecutor

    ex = DockerExecutor(pool_size=1)
    ex.warm()
    pooled = ex.idle_workers()[0].container
    session = session_on(ex)
    busy = session.container
    assert busy == pooled  # the pool handed its warm container over
    ex.warm(60)  # refilled in the background
    refilled = ex.idle_workers()[0].container
    assert refilled != busy and container_exists(refilled)
    ex.shutdown()
    assert not container_exists(busy) and not container_exists(refilled)
    session.close()  # after shutdown: harmless


def test_an_orphan_of_a_killed_process_is_removed_at_the_next_start(engine, tmp_path):
    from agentic_vision.sandboxing.docker import DockerExecutor

    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent("""
        from agentic_vision.sandboxing.session import open_session
        session = open_session("docker", guard=False, pool_size=0, timeout=600)
        print(session.container, flush=True)
        session.run("import time\\ntime.sleep(600)")   # busy: it will not notice its owner die
    """))
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        name = owner.stdout.readline().strip()
        assert name.startswith("agentic-vision-")
        time.sleep(1.0)  # the run has started
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert container_exists(name), "the killed owner's container should be an orphan now"
    DockerExecutor(pool_size=0).shutdown()  # starting an executor sweeps orphans, synchronously
    assert not container_exists(name)


def test_a_live_sessions_container_survives_the_sweep(executor):
    from agentic_vision.sandboxing.docker import sweep_orphans

    with session_on(executor) as session:
        name = session.container
        assert name not in sweep_orphans()
        assert session.run("print(1)").output == "1\n"


def test_ctrl_c_in_the_cli_removes_the_running_container(engine):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "docker", "--timeout", "120",
         "print('started', flush=True)\nwhile True:\n    pass"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )

    def containers():
        out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=org.agentic-vision.owner={proc.pid}"],
                             capture_output=True, text=True)
        return out.stdout.split()

    try:
        deadline = time.monotonic() + 60
        while not containers() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert containers(), "the CLI did not start a container"
        time.sleep(2.0)  # the runtime is up (a cold start takes ~1 s) and running the loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip() == "agentic-vision: interrupted"
    assert containers() == []


# -- start-up errors: one line, exit 3 ----------------------------------------------------------


def one_line_error(result) -> str:
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (not an engine)")
def test_engine_not_running():
    env = dict(os.environ, DOCKER_HOST="unix:///tmp/nonexistent.sock")
    message = one_line_error(cli("exec", "--sandbox", "docker", "print(1)", env=env))
    assert message == (
        "agentic-vision: the Docker engine is not running: start it "
        "(e.g. 'sudo systemctl start docker' or scripts/start-docker.sh)"
    )


def test_image_not_built(engine):
    env = dict(os.environ, AGENTIC_VISION_DOCKER_IMAGE="agentic-vision/none:missing")
    message = one_line_error(cli("exec", "--sandbox", "docker", "print(1)", env=env))
    assert message == (
        "agentic-vision: the sandbox image agentic-vision/none:missing is not built: "
        "run 'agentic-vision sandbox build'"
    )


def test_docker_cli_missing(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    message = one_line_error(cli("exec", "--sandbox", "docker", "print(1)", env=env))
    assert message.startswith("agentic-vision: the docker command is not installed")


def test_permission_denied_on_the_socket(tmp_path):
    # Root cannot be denied the socket, so a stand-in docker says what the real one says.
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\necho 'permission denied while trying to connect to the Docker daemon socket at "
        "unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.50/images/json\": "
        "dial unix /var/run/docker.sock: connect: permission denied' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    message = one_line_error(cli("exec", "--sandbox", "docker", "print(1)", env=env))
    assert "permission denied on the Docker socket" in message
    assert "docker group" in message and "sudo" in message


def test_image_out_of_date(engine, monkeypatch):
    from agentic_vision.sandboxing import docker as docker_sandbox
    from agentic_vision.errors import SandboxUnavailable

    monkeypatch.setattr(docker_sandbox, "source_hash", lambda root=None: "0" * 64)
    with pytest.raises(SandboxUnavailable) as caught:
        docker_sandbox.DockerExecutor(pool_size=0)
    assert str(caught.value) == (
        f"the sandbox image {docker_sandbox.image_name()} is out of date with this checkout's "
        "sandbox/ files: run 'agentic-vision sandbox build'"
    )


def test_auto_picks_docker_when_it_is_ready(engine):
    from agentic_vision.sandboxing.docker import docker_ready
    from agentic_vision.sandboxing.executors import resolve_kind

    assert docker_ready()
    assert resolve_kind("auto") == "docker"


# -- the CLI --------------------------------------------------------------------------------


def test_exec_crops_an_input_in_docker(engine, photo, tmp_path):
    out = tmp_path / "out"
    code = "from PIL import Image\nimg = Image.open('photo.jpg')\nprint(img.size)\nimg.crop((0, 0, 120, 80)).save('crop.png')"
    result = cli("exec", "--sandbox", "docker", "--input", str(photo), "--out", str(out), "--json", code)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["outcome"], data["output"]) == ("OUTCOME_OK", "(640, 427)\n")
    [image] = data["images"]
    assert (image["width"], image["height"]) == (120, 80)
    assert png_size(Path(image["path"]).read_bytes()) == (120, 80)


def test_build_does_nothing_when_the_image_is_current(engine):
    from click.testing import CliRunner

    from agentic_vision.cli.docker import build_command
    from agentic_vision.sandboxing.docker import image_name, inspect_image

    before = inspect_image(image_name())["Id"]
    result = CliRunner().invoke(build_command, [])
    assert result.exit_code == 0, result.exception
    assert inspect_image(image_name())["Id"] == before


def test_build_outside_a_checkout_says_what_to_do(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from agentic_vision.cli import docker as docker_commands
    from agentic_vision.errors import SandboxUnavailable

    monkeypatch.setattr(docker_commands, "BUILD_SCRIPT", tmp_path / "missing.sh")
    result = CliRunner().invoke(docker_commands.build_command, [])
    assert isinstance(result.exception, SandboxUnavailable)
    assert "\n" not in str(result.exception) and "source checkout" in str(result.exception)
