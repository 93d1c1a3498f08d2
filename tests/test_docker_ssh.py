"""The Docker sandbox over ssh://: a real sshd on loopback in front of the real local engine.

The sshd is the test's own child (``sshd -D -e``): its own host key, config,
authorized keys and pid file under tmp, listening on 127.0.0.1 only.  The
client is the CLI with HOME set to a temporary directory whose ~/.ssh holds the
key and known_hosts, which is where the SDK's paramiko transport looks, and a
PATH without the docker and ssh binaries.  Nothing of the machine's own ssh
setup is read or changed.  The remote side of ssh:// runs ``docker system
dial-stdio`` (the docker CLI of this machine) for every connection.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import png_size, require, require_docker, sample
from tcp_forwarder import closed_port, engine_forwarder
from test_docker import ROOT, cli, one_line_error

pytestmark = pytest.mark.docker
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; made by its service, which we never start


def ssh_prerequisites() -> str | None:
    if not os.access(SSHD, os.X_OK):
        return "openssh-server is not installed (scripts/test.sh installs it with apt where it can)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen (openssh-client) is not installed"
    if os.geteuid() != 0:
        return "the loopback sshd logs in as root, which needs root"
    if shutil.which("docker", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "the ssh transport runs 'docker system dial-stdio' on the remote: this machine has no docker CLI"
    try:
        import paramiko  # noqa: F401
    except ImportError:
        return "paramiko is not installed (pip install 'agentic-vision[ssh]')"
    return None


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class Sshd:
    """An sshd of our own on a free loopback port; its -e log is in .log()."""

    def __init__(self, root: Path, authorized: Path, extra: str = "") -> None:
        root.mkdir()
        self.root, self.port = root, closed_port()
        self.host_key = keygen(root / "host_key")
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {authorized}\nPidFile {root / 'sshd.pid'}\n"
            "UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nStrictModes no\nLogLevel VERBOSE\n" + extra
        )
        self._log = open(root / "sshd.log", "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while "Server listening" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"sshd did not start: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return (self.root / "sshd.log").read_text(errors="replace")

    def known_hosts_line(self) -> str:
        kind, key = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # sshd and the sessions it forked
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def ssh(tmp_path_factory):
    """(make_sshd, client_key, authorized_keys): sshds stopped at the end of the module."""
    problem = ssh_prerequisites()
    require(not problem, problem)
    require_docker()
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    tmp = tmp_path_factory.mktemp("ssh")
    client_key = keygen(tmp / "client_key")
    authorized = tmp / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    started = []

    def make(name: str, extra: str = "") -> Sshd:
        started.append(Sshd(tmp / name, authorized, extra))
        return started[-1]

    yield make, client_key
    for sshd in started:
        sshd.stop()


@pytest.fixture(scope="module")
def forwarder():
    """The engine as the sshd's sessions reach it: a counting TCP forwarder to its socket."""
    with engine_forwarder() as fwd:
        yield fwd


@pytest.fixture(scope="module")
def sshd(ssh, forwarder):
    # What the sessions run (`docker system dial-stdio`) reaches the engine
    # through the forwarder, so what it counted went over ssh.
    return ssh[0]("sshd", f"SetEnv DOCKER_HOST={forwarder.address}\n")


def client_env(home: Path, key: Path | None, known: str) -> dict:
    """The CLI's environment: HOME/.ssh as paramiko reads it, no docker or ssh binary on PATH."""
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(parents=True)
    if key is not None:
        shutil.copy(key, dot_ssh / "id_ed25519")
    (dot_ssh / "known_hosts").write_text(known)
    (home / "bin").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "SSH_"))}
    # The local sandbox's environment stays where it is when HOME moves.
    env.setdefault("AGENTIC_VISION_HOME", os.environ.get("AGENTIC_VISION_HOME") or str(Path.home() / ".local/share/agentic-vision"))
    env.update(HOME=str(home), PATH=str(home / "bin"))
    return env


def test_exec_over_ssh_carries_the_image_both_ways(sshd, ssh, forwarder, tmp_path):
    before, up, down = sshd.log(), forwarder.bytes_up, forwarder.bytes_down
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    image = sample("astronaut.png")
    code = ("from PIL import Image\nim = Image.open('astronaut.png')\nprint(im.size)\n"
            "display(im.crop((100, 50, 300, 250)))")
    result = cli("exec", "--sandbox", "docker", "--docker-host", f"ssh://root@127.0.0.1:{sshd.port}",
                 "--input", str(image), "--out", str(tmp_path / "out"), "--json", code, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outcome"] == "OUTCOME_OK" and data["output"] == "(512, 512)\n"
    [shown] = data["images"]
    crop = (tmp_path / "out" / os.path.basename(shown["path"])).read_bytes()
    assert png_size(crop) == (200, 200)
    # It went over our sshd: a key login, a session (`docker system dial-stdio`)
    # per API connection, and through those the image up and the crop down.
    log = sshd.log()[len(before):]
    assert "Accepted publickey for root from 127.0.0.1" in log
    assert log.count("Starting session: command for root") >= 3
    assert forwarder.bytes_up - up > image.stat().st_size
    assert forwarder.bytes_down - down > len(crop)


def test_an_input_larger_than_the_ssh_window_arrives_whole(sshd, ssh, tmp_path):
    """OpenSSH's channel window is 2 MB: a 12 MB input needs its flow control all the way."""
    import hashlib

    import numpy as np
    from PIL import Image

    big = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)).save(big, compress_level=0)
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    code = "import hashlib\nprint(hashlib.sha256(open('noise.png', 'rb').read()).hexdigest())"
    result = cli("exec", "--sandbox", "docker", "--docker-host", f"ssh://root@127.0.0.1:{sshd.port}",
                 "--input", str(big), code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == hashlib.sha256(big.read_bytes()).hexdigest() + "\n"


def test_a_run_over_its_time_limit_is_stopped_over_ssh(sshd, ssh, tmp_path):
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    started = time.monotonic()
    result = cli("exec", "--sandbox", "docker", "--docker-host", f"ssh://root@127.0.0.1:{sshd.port}", "--timeout", "2",
                 "--json", "print('spinning', flush=True)\nwhile True: pass", env=env)
    data = json.loads(result.stdout)
    assert data["outcome"] == "OUTCOME_DEADLINE_EXCEEDED", result.stderr
    assert data["output"].startswith("spinning\n")
    assert time.monotonic() - started < 30


def test_sandbox_info_names_the_ssh_engine(sshd, ssh, tmp_path):
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    env["PATH"] = os.environ["PATH"]  # `sandbox info` also starts the local sandbox (setpriv, bwrap)
    address = f"ssh://root@127.0.0.1:{sshd.port}"
    result = cli("sandbox", "info", "--docker-host", address, env=env)
    assert result.returncode == 0, result.stderr
    import docker

    from agentic_vision.sandboxing.docker_engine import image_name

    real = docker.from_env().version()
    assert (f"docker engine: {address} (local, over ssh, from --docker-host): Docker {real['Version']}, "
            f"API {real['ApiVersion']}, {real['Os']}/{real['Arch']}\n") in result.stdout
    assert f"docker image: {image_name()} (built and current)\n" in result.stdout


# -- failures: one line, exit 3, within seconds ------------------------------------------------------


def ssh_error(env, address: str) -> tuple[str, float]:
    started = time.monotonic()
    result = cli("exec", "--sandbox", "docker", "--docker-host", address, "print(1)", env=env)
    return one_line_error(result), time.monotonic() - started


def test_nothing_listening(ssh, sshd, tmp_path):
    port = closed_port()
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    message, took = ssh_error(env, f"ssh://root@127.0.0.1:{port}")
    assert message == (f"agentic-vision: no ssh server answers at 127.0.0.1:{port} (connection refused): "
                       f"check the host and port in ssh://root@127.0.0.1:{port}")
    assert took < 15


def test_a_key_the_server_does_not_know_is_refused(ssh, sshd, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    env = client_env(tmp_path / "home", stranger, sshd.known_hosts_line())
    message, took = ssh_error(env, f"ssh://root@127.0.0.1:{sshd.port}")
    assert message == (
        f"agentic-vision: the ssh server at 127.0.0.1:{sshd.port} refused the login (Authentication failed.): put "
        "your public key in that user's authorized_keys, or name the key with IdentityFile in ~/.ssh/config "
        "(keys in ~/.ssh and ssh-agent are tried)"
    )
    assert took < 15


def test_an_unknown_host_key_is_refused(ssh, sshd, tmp_path):
    """Accepting a first-seen key silently would let anyone on the path run the sandbox: refused, as by the SDK."""
    env = client_env(tmp_path / "home", ssh[1], known="")
    message, took = ssh_error(env, f"ssh://root@127.0.0.1:{sshd.port}")
    assert message == (
        f"agentic-vision: the ssh host key of 127.0.0.1:{sshd.port} is not in ~/.ssh/known_hosts and unknown hosts "
        f"are refused: connect once with 'ssh -p {sshd.port} root@127.0.0.1' to check and accept it"
    )
    assert took < 15


def test_a_changed_host_key_is_refused(ssh, sshd, tmp_path):
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()
    env = client_env(tmp_path / "home", ssh[1], known=f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    message, _ = ssh_error(env, f"ssh://root@127.0.0.1:{sshd.port}")
    assert message.startswith(f"agentic-vision: the ssh host key of 127.0.0.1:{sshd.port} is not the one in ~/.ssh/known_hosts")


def test_a_remote_without_the_docker_cli(ssh, tmp_path):
    # A login whose commands find no docker: `docker system dial-stdio` ends at once.
    bare = ssh[0]("bare", 'ForceCommand env PATH=/nonexistent /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
    env = client_env(tmp_path / "home", ssh[1], bare.known_hosts_line())
    message, took = ssh_error(env, f"ssh://root@127.0.0.1:{bare.port}")
    assert message == (
        f"agentic-vision: the ssh login to 127.0.0.1:{bare.port} worked but no Docker engine answered through it: "
        "'docker system dial-stdio' failed there; that machine needs the docker CLI on that user's PATH and a running engine"
    )
    assert took < 15


def test_a_server_that_allows_too_few_channels_names_max_sessions(ssh, tmp_path):
    # One connection, many channels: the API's connections and each session's stream.
    narrow = ssh[0]("narrow", "MaxSessions 2\n")
    env = client_env(tmp_path / "home", ssh[1], narrow.known_hosts_line())
    message, took = ssh_error(env, f"ssh://root@127.0.0.1:{narrow.port}")
    assert message == (
        f"agentic-vision: the ssh server at 127.0.0.1:{narrow.port} opened no further channel (Connect failed): each "
        "sandbox session holds one and the API a few more; raise MaxSessions (OpenSSH's default is 10) in that "
        "server's sshd_config"
    )
    assert took < 15


def test_a_server_that_never_speaks_ssh_fails_within_the_probe_timeout(ssh, sshd, tmp_path):
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections are queued, never answered
        address = f"ssh://root@127.0.0.1:{silent.getsockname()[1]}"
        message, took = ssh_error(env, address)
    assert message == f"agentic-vision: the ssh server for the Docker host {address} did not answer within 5 s"
    assert took < 15


def test_without_paramiko_it_says_which_extra_to_install(ssh, sshd, tmp_path):
    env = client_env(tmp_path / "home", ssh[1], sshd.known_hosts_line())
    address = f"ssh://root@127.0.0.1:{sshd.port}"
    hide = "import sys; sys.modules['paramiko'] = None; from agentic_vision.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", hide, "exec", "--sandbox", "docker", "--docker-host", address, "print(1)"],
                            capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert one_line_error(result) == (f"agentic-vision: the Docker host {address} is reached over ssh, which needs "
                                      "paramiko: pip install 'agentic-vision[ssh]'")
