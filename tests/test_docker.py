"""The Docker sandbox itself: the image, the container's hardening, its lifetime.

What sessions do (and the attacks they withstand) is tested on every sandbox
kind in test_session.py and test_containment.py; this file is what only the
Docker executor has: an image, a container configuration, containers to clean
up.  Engines reached other ways (TCP, contexts, no CLI) are in
test_docker_engines.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import png_size, require_docker

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine():
    """An engine that answers and a current image (tests of start-up errors need neither)."""
    require_docker()


@pytest.fixture
def executor(engine):
    from agentic_vision.sandboxing.docker import DockerExecutor

    ex = DockerExecutor(pool_size=0)
    yield ex
    ex.shutdown()


def session_on(executor, **kwargs):
    from agentic_vision.sandboxing.session import Session

    return Session(executor, kwargs.get("inputs", []), kwargs.get("timeout", 20), kwargs.get("guard", False))


def engine_api():
    import docker

    return docker.from_env().api


def container_exists(cid: str) -> bool:
    import docker

    try:
        engine_api().inspect_container(cid)
    except docker.errors.NotFound:
        return False
    return True


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "agentic_vision", *args],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )


# -- the image ----------------------------------------------------------------------------


def test_all_37_hosted_libraries_and_the_pdf_renderer_import_in_the_image(engine):
    from click.testing import CliRunner

    from agentic_vision.cli.docker import check_command
    from agentic_vision.sandboxing.runtime_files import library_specs

    result = CliRunner().invoke(check_command, ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sum(spec["hosted"] for spec in library_specs()) == 37  # Gemini's list
    assert [spec["name"] for spec in library_specs() if not spec["hosted"]] == ["pypdfium2"]  # beyond it
    assert sorted(report["libraries"]) == sorted(spec["name"] for spec in library_specs())
    missing = {name: s.get("error") for name, s in report["libraries"].items() if not s["available"]}
    assert missing == {}
    assert report["size_bytes"] > 100_000_000


def test_source_hash_matches_the_build_script():
    from agentic_vision.sandboxing.docker_engine import source_hash

    script = subprocess.run([str(ROOT / "scripts" / "build-sandbox-image.sh"), "--print-hash"],
                            capture_output=True, text=True, check=True)
    assert source_hash() == script.stdout.strip()


# -- hardening --------------------------------------------------------------------------


def test_the_container_is_hardened(executor):
    """Every hardening setting, read back from the engine's inspect output, and seen from inside."""
    with session_on(executor) as session:
        info = engine_api().inspect_container(session.container)
        inside = session.run(textwrap.dedent("""
            import os, resource
            status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\\t' in line)
            try:
                open('/etc/probe', 'w')
                root = 'writable'
            except OSError:
                root = 'read-only'
            work = os.statvfs('/work')
            print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['NoNewPrivs'].strip(),
                  resource.getrlimit(resource.RLIMIT_NOFILE)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0],
                  ','.join(sorted(os.listdir('/sys/class/net'))), root, work.f_blocks * work.f_frsize)
        """)).output
    host, config = info["HostConfig"], info["Config"]
    limits = executor.limits
    # no network
    assert host["NetworkMode"] == "none" and config["NetworkDisabled"] is True
    assert list(info["NetworkSettings"]["Networks"]) in ([], ["none"])
    # read-only root, tmpfs caps, nothing of the host mounted
    assert host["ReadonlyRootfs"] is True
    assert f"size={limits.workdir_bytes}" in host["Tmpfs"]["/work"]
    assert f"size={limits.tmp_bytes}" in host["Tmpfs"]["/tmp"]
    assert not host.get("Binds") and not host.get("Mounts") and info["Mounts"] == []
    assert not host.get("Devices") and not host.get("VolumesFrom")
    # no capabilities, no-new-privileges (the seccomp profile joins SecurityOpt)
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["Privileged"] is False
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["SecurityOpt"] == executor.security_opt()
    # pids, memory (no swap), CPU
    assert host["PidsLimit"] == limits.max_processes
    assert host["Memory"] == host["MemorySwap"] == limits.memory_bytes
    assert host["NanoCpus"] == int(executor.cpus * 1e9)
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {
        "nofile": limits.open_files, "fsize": limits.file_size_bytes, "core": 0,
    }
    # non-root user, private namespaces, no log copy of the protocol
    assert config["User"] == "10001:10001"
    assert host["IpcMode"] == "private" and host["CgroupnsMode"] == "private"
    assert host["PidMode"] == "" and host["UTSMode"] == "" and host["UsernsMode"] == ""
    assert not host.get("Init")  # the broker is pid 1
    assert host["LogConfig"]["Type"] == "none"
    # the channel: stdin attached without a TTY, closed when the host detaches
    assert (config["OpenStdin"], config["StdinOnce"], config["Tty"]) == (True, True, False)
    assert config["Image"] == executor.image_id
    assert not any(e.split("=")[0].lower().endswith("_proxy") for e in config["Env"])
    labels = config["Labels"]
    assert labels["org.agentic-vision.session"] == "1"
    assert labels["org.agentic-vision.owner"] == executor.owner
    assert float(labels["org.agentic-vision.lease"]) == executor.lease
    assert inside.split() == [
        "10001", "10001", "0000000000000000", "1", str(limits.open_files), str(limits.file_size_bytes),
        "lo", "read-only", str(limits.workdir_bytes),
    ]


def test_the_containers_own_stderr_is_kept_apart_and_bounded(engine):
    """12 MiB written to the container's stderr arrive as stderr frames on the attach
    stream: the protocol on stdout is unharmed and the host keeps only a 4 KiB tail.
    Model code cannot reach that stderr (only the broker holds it), so a hostile
    runtime in place of the broker writes it."""
    from agentic_vision import open_session

    hostile = (Path(__file__).parent / "hostile_runtime.py").read_text()
    with open_session("docker", entry=("-c", hostile)) as session:
        result = session.run("stderr flood")
        assert (result.outcome, result.output) == ("OUTCOME_OK", "ok\n")
        # stderr frames travel beside the result on the attach stream: the last may land just after it.
        deadline = time.monotonic() + 10
        while not session._worker.channel.stderr_tail.endswith(b"the end\n") and time.monotonic() < deadline:
            time.sleep(0.05)
        tail = session._worker.channel.stderr_tail
        assert len(tail) == 4096 and tail.endswith(b"xthe end\n")
        assert session.run("print(1)").output == "1\n"


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


OWNER_SCRIPT = """
from agentic_vision.sandboxing.session import open_session
session = open_session("docker", guard=False, pool_size=1, timeout=600)
import threading
threading.Thread(target=session.run, args=("import time\\ntime.sleep(600)",), daemon=True).start()  # busy: it will not notice its owner die
session.executor.warm()  # and one waiting in the pool
print(session.container, session.executor.idle_workers()[0].container, flush=True)
import time
time.sleep(600)
"""


def start_owner(lease: float):
    env = dict(os.environ, AGENTIC_VISION_DOCKER_LEASE=str(lease))
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    line = owner.stdout.readline().split()
    assert len(line) == 2, "the owner process did not start its containers"
    return owner, line


def test_two_owners_share_an_engine_and_a_dead_ones_containers_go_when_its_lease_ends(engine):
    """Owner A killed with -9: B (alive, renewing) keeps its containers; A's go once A's lease ran out."""
    from agentic_vision.sandboxing.docker import DockerExecutor

    lease = 4.0
    a, a_containers = start_owner(lease)
    b, b_containers = start_owner(lease)
    try:
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed_at = time.monotonic()
        # At once, a new executor's start-up sweep keeps both: A's lease is still running.
        DockerExecutor(pool_size=0, lease=lease).shutdown()
        assert all(container_exists(c) for c in a_containers + b_containers)
        # B outlives several of its leases (it renews them); A's sweep-able after one.
        time.sleep(max(0.0, killed_at + 2.5 * lease - time.monotonic()))
        DockerExecutor(pool_size=0, lease=lease).shutdown()  # its start-up sweep
        assert all(not container_exists(c) for c in a_containers), "the dead owner's containers are still there"
        assert all(container_exists(c) for c in b_containers), "the live owner's containers were removed"
        names = [engine_api().inspect_container(c)["Name"] for c in b_containers]
        assert all("-until-" in n for n in names)
    finally:
        for owner in (a, b):
            owner.kill()
            owner.wait()
    for c in b_containers:  # B was killed too: its lease ends like A's did
        try:
            engine_api().remove_container(c, force=True)
        except Exception:
            pass


def test_a_live_sessions_container_survives_the_sweep(executor, engine):
    from agentic_vision.sandboxing.docker import DockerExecutor

    other = DockerExecutor(pool_size=0, lease=1.0)  # another owner on the same engine
    try:
        with session_on(executor) as session:
            cid = session.container
            time.sleep(1.5)
            assert cid not in other.sweep()  # executor's lease is renewed, not expired
            assert session.run("print(1)").output == "1\n"
    finally:
        other.shutdown()


def test_ctrl_c_in_the_cli_removes_the_running_container(engine):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_vision", "exec", "--sandbox", "docker", "--timeout", "120",
         "print('started', flush=True)\nwhile True:\n    pass"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )

    def containers():
        found = engine_api().containers(all=True, filters={"label": f"org.agentic-vision.owner-pid={proc.pid}"})
        return [c["Id"] for c in found]

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
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == "agentic-vision: interrupted" and lines[:-1] in ([], ["sandbox: docker"])
    assert containers() == []


# -- start-up errors: one line, exit 3 ----------------------------------------------------------


def one_line_error(result) -> str:
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def test_image_not_built(engine):
    env = dict(os.environ, AGENTIC_VISION_DOCKER_IMAGE="agentic-vision/none:missing")
    message = one_line_error(cli("exec", "--sandbox", "docker", "print(1)", env=env))
    assert message == (
        "agentic-vision: the sandbox image agentic-vision/none:missing is not built on the engine at "
        "unix:///var/run/docker.sock: run 'agentic-vision sandbox build'"
    )


def test_image_out_of_date(engine, monkeypatch):
    from agentic_vision.sandboxing import docker as docker_sandbox
    from agentic_vision.sandboxing import docker_engine
    from agentic_vision.errors import SandboxUnavailable

    monkeypatch.setattr(docker_engine, "source_hash", lambda: "0" * 64)
    with pytest.raises(SandboxUnavailable) as caught:
        docker_sandbox.DockerExecutor(pool_size=0)
    assert str(caught.value) == (
        f"the sandbox image {docker_sandbox.image_name()} is out of date with this version's "
        "sandbox files: run 'agentic-vision sandbox build'"
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
    from agentic_vision.sandboxing.docker_engine import connect, image_name, inspect_image

    before = inspect_image(connect(), image_name())["Id"]
    result = CliRunner().invoke(build_command, [])
    assert result.exit_code == 0, result.exception
    assert inspect_image(connect(), image_name())["Id"] == before


def test_build_without_build_files_says_what_to_do(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from agentic_vision.cli import docker as docker_commands
    from agentic_vision.errors import SandboxUnavailable
    from agentic_vision.sandboxing import runtime_files

    # Neither a checkout nor the wheel's copies: a package built without its build files.
    monkeypatch.setattr(runtime_files, "CHECKOUT", tmp_path)
    monkeypatch.setattr(runtime_files, "SHIPPED", tmp_path / "image_build")
    result = CliRunner().invoke(docker_commands.build_command, [])
    assert isinstance(result.exception, SandboxUnavailable)
    assert "\n" not in str(result.exception) and "no Dockerfile.sandbox" in str(result.exception)
