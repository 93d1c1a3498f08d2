"""Reaching the engine every way a user can: no CLI, TCP, a context, an option; and every way it fails.

All against the real local engine; TCP goes through a forwarder on loopback
(tcp_forwarder.py) that counts what really travelled over it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import png_size, require
from tcp_forwarder import closed_port, engine_forwarder, engine_socket
from test_docker import cli, engine, one_line_error  # noqa: F401  (engine is a fixture)

pytestmark = pytest.mark.docker


@pytest.fixture
def no_cli_env(tmp_path):
    """The environment without any `docker` binary on PATH (only bwrap)."""
    only = tmp_path / "bin"
    only.mkdir()
    if shutil.which("bwrap"):
        (only / "bwrap").symlink_to(shutil.which("bwrap"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PATH"] = str(only)
    assert shutil.which("docker", path=env["PATH"]) is None
    return env


@pytest.fixture
def forwarder():
    with engine_forwarder() as fwd:
        yield fwd


def test_exec_needs_no_docker_binary(engine, no_cli_env):
    result = cli("exec", "--sandbox", "docker", "print(6 * 7)", env=no_cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


def test_sandbox_build_needs_no_docker_binary(engine, no_cli_env):
    result = cli("sandbox", "build", env=no_cli_env)
    assert result.returncode == 0, result.stderr
    assert "is current" in result.stderr


def test_docker_host_over_tcp_carries_inputs_and_images(engine, no_cli_env, forwarder, photo, tmp_path):
    env = dict(no_cli_env, DOCKER_HOST=forwarder.address)
    code = "from PIL import Image\nImage.open('photo.jpg').crop((0, 0, 200, 100)).save('crop.png')\nprint('ok')"
    result = cli("exec", "--sandbox", "docker", "--input", str(photo), "--out", str(tmp_path / "out"), "--json", code, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output"] == "ok\n"
    [image] = data["images"]
    crop = (tmp_path / "out" / os.path.basename(image["path"])).read_bytes()
    assert png_size(crop) == (200, 100)
    # Everything went over TCP: the input up, the PNG down, and more than one API call.
    assert forwarder.connections >= 2
    assert forwarder.bytes_up > photo.stat().st_size
    assert forwarder.bytes_down > len(crop)


def tls_certificates(certs) -> "ssl.SSLContext":
    """A CA, a server certificate for 127.0.0.1 and a client one (ca.pem, cert.pem, key.pem as
    DOCKER_CERT_PATH holds them); the server's SSL context, which requires the client's."""
    import ssl

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem",
                "-out", f"{name}.csr")
        (certs / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}-cert.pem")
    shutil.copy(certs / "client-cert.pem", certs / "cert.pem")
    shutil.copy(certs / "client-key.pem", certs / "key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server-cert.pem", certs / "server-key.pem")
    context.load_verify_locations(certs / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def test_docker_host_over_tls_carries_inputs_and_images(engine, no_cli_env, photo, tmp_path):
    require(shutil.which("openssl"), "openssl (to make the certificates)")
    certs = tmp_path / "certs"
    certs.mkdir()
    with engine_forwarder(tls=tls_certificates(certs)) as tls:
        # requests lets these override the CA the SDK sets from DOCKER_CERT_PATH.
        env = {k: v for k, v in no_cli_env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        env.update(DOCKER_HOST=tls.address, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(certs))
        code = "from PIL import Image\nImage.open('photo.jpg').crop((0, 0, 120, 80)).save('crop.png')\nprint('ok')"
        result = cli("exec", "--sandbox", "docker", "--input", str(photo), "--out", str(tmp_path / "out"), "--json", code,
                     env=env)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["output"] == "ok\n"
        [image] = data["images"]
        assert png_size((tmp_path / "out" / os.path.basename(image["path"])).read_bytes()) == (120, 80)
        assert tls.connections >= 2
        assert tls.bytes_up > photo.stat().st_size


def test_the_docker_host_option_wins_over_the_environment(engine, no_cli_env, forwarder):
    env = dict(no_cli_env, DOCKER_HOST=f"tcp://127.0.0.1:{closed_port()}")
    result = cli("exec", "--sandbox", "docker", "--docker-host", forwarder.address, "print('over the option')", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "over the option\n"
    assert forwarder.connections >= 2


def test_sandbox_info_names_the_engine(engine, no_cli_env, forwarder):
    # `sandbox info` also starts the local sandbox, which needs the host's own tools (setpriv...).
    result = cli("sandbox", "info", "--json", "--docker-host", forwarder.address, env=dict(no_cli_env, PATH=os.environ["PATH"]))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)["docker"]
    import docker

    real = docker.from_env().version()
    assert found["engine"] == {
        "address": forwarder.address, "from": "--docker-host", "local": True, "transport": "tcp",
        "version": real["Version"], "api_version": real["ApiVersion"], "os": f"{real['Os']}/{real['Arch']}",
    }
    assert "problem" not in found  # the image is built and current
    assert forwarder.connections >= 1


def write_context(config_dir, name: str, host: str, current: bool) -> None:
    """A context as `docker context create NAME --docker host=HOST` writes it."""
    import hashlib

    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps(
        {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    (config_dir / "config.json").write_text(json.dumps({"currentContext": name} if current else {}))


@pytest.mark.parametrize("how", ["current context", "DOCKER_CONTEXT"])
def test_a_docker_context_is_followed(engine, no_cli_env, forwarder, tmp_path, how):
    config = tmp_path / "docker-config"
    write_context(config, "forwarded", forwarder.address, current=how == "current context")
    env = dict(no_cli_env, DOCKER_CONFIG=str(config))
    if how == "DOCKER_CONTEXT":
        env["DOCKER_CONTEXT"] = "forwarded"
    info = cli("sandbox", "info", "--json", env=dict(env, PATH=os.environ["PATH"]))  # the local sandbox needs setpriv
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["docker"]["engine"]["from"] == "context forwarded"
    result = cli("exec", "--sandbox", "docker", "print('via the context')", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "via the context\n"
    assert forwarder.connections >= 3


# -- failures: one line, exit 3, within seconds ------------------------------------------------------


def timed_error(*args, env) -> tuple[str, float]:
    started = time.monotonic()
    result = cli(*args, env=env)
    return one_line_error(result), time.monotonic() - started


def test_an_unreachable_docker_host_fails_in_seconds(no_cli_env):
    address = f"tcp://127.0.0.1:{closed_port()}"
    message, took = timed_error("exec", "--sandbox", "docker", "print(1)", env=dict(no_cli_env, DOCKER_HOST=address))
    assert message == (
        f"agentic-vision: no Docker engine answers at {address} (connection refused): start the Docker engine on "
        "that host, or set DOCKER_HOST / --docker-host to a running engine"  # not this machine's start script
    )
    assert took < 15  # the interpreter's start included; the probe gives up after 5 s at most


def test_an_engine_that_never_answers_fails_within_the_probe_timeout(no_cli_env):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # connections are queued, never answered
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        message, took = timed_error("exec", "--sandbox", "docker", "print(1)", env=dict(no_cli_env, DOCKER_HOST=address))
    assert message == f"agentic-vision: the Docker engine at {address} did not answer within 5 s"
    assert took < 20


def test_a_missing_socket_names_it(no_cli_env, tmp_path):
    address = f"unix://{tmp_path}/docker.sock"
    message, took = timed_error("exec", "--sandbox", "docker", "print(1)", env=dict(no_cli_env, DOCKER_HOST=address))
    assert message.startswith(f"agentic-vision: no Docker engine answers at {address} (no such socket)")
    assert took < 15


def test_auto_falls_back_to_local_when_the_engine_is_unreachable(no_cli_env):
    env = dict(no_cli_env, DOCKER_HOST=f"tcp://127.0.0.1:{closed_port()}", PATH=os.environ["PATH"])
    result = cli("exec", "--sandbox", "auto", "print('local')", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "local\n"


def test_permission_denied_on_the_socket(engine):
    """A user outside the docker group, for real: a child that dropped to nobody."""
    from agentic_vision.errors import SandboxUnavailable
    from agentic_vision.sandboxing.docker_engine import connect

    SOCKET = engine_socket()
    connect(f"unix://{SOCKET}").client.close()  # everything imported before the child loses access to it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no groups, uid/gid nobody
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                connect(f"unix://{SOCKET}")
                message = "connected"
            except SandboxUnavailable as exc:
                message = str(exc)
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    assert message == (
        f"permission denied on the Docker socket (unix://{SOCKET}): add yourself to the docker group "
        "('sudo usermod -aG docker $USER', then log in again) or use sudo"
    )


def test_a_tls_failure_is_one_line(engine, no_cli_env, forwarder, tmp_path):
    """DOCKER_TLS_VERIFY against an endpoint that does not speak TLS (the plain forwarded socket)."""
    require(shutil.which("openssl"), "openssl (to make the client certificates)")
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")], check=True, capture_output=True)
    shutil.copy(certs / "cert.pem", certs / "ca.pem")
    env = dict(no_cli_env, DOCKER_HOST=forwarder.address, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(certs))
    message, took = timed_error("exec", "--sandbox", "docker", "print(1)", env=env)
    assert message.startswith(f"agentic-vision: TLS with the Docker engine at {forwarder.address} failed (")
    assert message.endswith("check DOCKER_TLS_VERIFY and the ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH")
    assert took < 15
    assert forwarder.connections >= 1  # it did reach the endpoint; the handshake failed


def test_an_engine_too_old_is_refused(engine):
    """The real engine, presented through the forwarder as speaking API 1.40 (the answer rewritten, same length)."""
    import docker

    from agentic_vision.errors import SandboxUnavailable
    from agentic_vision.sandboxing.docker_engine import connect

    real = docker.from_env().version()["ApiVersion"]
    with engine_forwarder(rewrite=(f'"ApiVersion":"{real}"'.encode(), b'"ApiVersion":"1.40"')) as fwd:
        with pytest.raises(SandboxUnavailable) as caught:
            connect(fwd.address)
    assert str(caught.value).startswith(f"the Docker engine at {fwd.address} is too old (Engine ")
    assert str(caught.value).endswith("API 1.40): the Docker sandbox needs API 1.41 or newer (Docker 20.10+); upgrade the engine")


def test_ask_runs_the_models_code_on_the_engine_given_by_the_option(engine, no_cli_env, forwarder):
    from agentic_vision.testing.gemini_server import ScriptedGemini, reply
    from conftest import sample

    code = "from PIL import Image\nImage.open('coins.png').crop((0, 0, 100, 80)).show()\nprint('cropped')"
    script = [reply.call("run_python", {"code": code}), reply.text("24 coins.")]
    env = {k: v for k, v in no_cli_env.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    with ScriptedGemini(script) as server:
        env.update(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=server.url,
                   DOCKER_HOST=f"tcp://127.0.0.1:{closed_port()}")  # the option must win over this
        result = cli("ask", str(sample("coins.png")), "How many coins?", "--sandbox", "auto",
                     "--docker-host", forwarder.address, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "24 coins.\n"
    assert "sandbox: docker" in result.stderr and "images: 100x80" in result.stderr
    assert forwarder.bytes_up > sample("coins.png").stat().st_size  # the image went to the engine over TCP
