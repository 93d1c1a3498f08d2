"""Reaching a Docker engine through the Engine API (the `docker` SDK).

Where the engine is comes, in this order, from an explicit setting
(``--docker-host`` / ``docker_host=``), ``DOCKER_HOST`` (with
``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``), the Docker context named by
``DOCKER_CONTEXT`` or current in ``~/.docker/config.json``, else the local
socket: what ``docker.from_env`` reads.  No ``docker`` CLI is involved.

Every way of not reaching it (nothing listening, permission denied on the
socket, a TLS failure, an ssh login refused, an engine too old, a missing or
stale image) becomes one ``SandboxUnavailable`` line within a few seconds.

An ``ssh://user@host[:port]`` engine goes through the SDK's paramiko
transport (the ``ssh`` extra): it logs in with the keys of ``~/.ssh`` (or
``IdentityFile`` in ``~/.ssh/config``, or ssh-agent), refuses a host whose key
is not in ``~/.ssh/known_hosts``, and runs ``docker system dial-stdio`` there
for every connection, so that machine needs the ``docker`` CLI.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

import docker
import requests
import urllib3
from docker.context import ContextAPI
from docker.utils import kwargs_from_env

from ..errors import SandboxUnavailable
from .image_source import hash_of
from .runtime_files import CHECKOUT, image_sources

try:
    import paramiko  # the `ssh` extra: how the SDK reaches ssh:// engines
except ImportError:
    paramiko = None
else:
    # Its failures become our one-line errors; without a handler, logging's
    # last resort would print them to stderr as well, and a handler the command
    # line puts on the root logger (-v, --log-level) would get them by propagation.
    _paramiko_log = logging.getLogger("paramiko")
    _paramiko_log.addHandler(logging.NullHandler())
    _paramiko_log.propagate = False

DEFAULT_IMAGE = "agentic-vision/sandbox:latest"
DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
# API 1.41 (Docker 20.10) is the first with a private cgroup namespace (CgroupnsMode).
MIN_API = "1.41"
PROBE_TIMEOUT = 5.0  # first contact: an answer or a one-line error within seconds
API_TIMEOUT = 120.0  # later calls (create, remove) on a busy engine
BUILD_HINT = "run 'agentic-vision sandbox build'"
HASH_LABEL = "org.agentic-vision.sandbox.hash"
START_SCRIPT = CHECKOUT / "scripts" / "start-docker.sh"  # in a checkout only: pip users have none


def start_hint(address: str) -> str:
    """How to start the engine at ``address``: on this machine, or on the one it names."""
    if not address.startswith(("unix://", "npipe://")):
        return "start the Docker engine on that host"
    script = " or scripts/start-docker.sh in this checkout" if START_SCRIPT.is_file() else ""
    return f"start it (e.g. 'sudo systemctl start docker'{script})"


def image_name() -> str:
    return os.environ.get("AGENTIC_VISION_DOCKER_IMAGE") or DEFAULT_IMAGE


@dataclass
class Engine:
    """A connected, answering engine of a recent enough API version."""

    client: docker.DockerClient
    address: str
    source: str  # where the address came from: "--docker-host", "DOCKER_HOST", "context NAME", "default"
    version: dict  # what GET /version answered

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @property
    def transport(self) -> str:
        """How the API travels: unix, tcp, ssh or npipe."""
        return urlparse(self.address).scheme.removeprefix("http+") or "unix"

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine (a unix socket or a loopback address)."""
        url = urlparse(self.address)
        if url.scheme in ("unix", "npipe", "http+unix", ""):
            return True
        return url.hostname in ("localhost", "127.0.0.1", "::1")

    def describe(self) -> dict:
        return {
            "address": self.address,
            "from": self.source,
            "local": self.local,
            "transport": self.transport,
            "version": self.version.get("Version", "?"),
            "api_version": self.version.get("ApiVersion", "?"),
            "os": f"{self.version.get('Os', '?')}/{self.version.get('Arch', '?')}",
        }


def settings(docker_host: str | None = None) -> tuple[dict, str, str]:
    """The SDK's connection keywords, the address and where it came from."""
    env = os.environ
    try:
        params = kwargs_from_env(environment=env)  # DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
    except docker.errors.TLSParameterError as exc:
        raise SandboxUnavailable(f"the Docker TLS settings are unusable: {_one_line(exc)} (check DOCKER_CERT_PATH)") from None
    if docker_host:
        params["base_url"] = docker_host
        return params, docker_host, "--docker-host"
    if "base_url" in params:
        return params, params["base_url"], "DOCKER_HOST"
    name = env.get("DOCKER_CONTEXT") or docker.context.config.get_current_context_name()
    try:
        from_context = ContextAPI.kwargs_from_context(environment=env)
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(f"the Docker context {name!r} is unusable: {_one_line(exc)}") from None
    params.update(from_context)
    if "base_url" in from_context and name != "default":
        return params, from_context["base_url"], f"context {name}"
    return params, params.get("base_url") or DEFAULT_ADDRESS, "default"


def connect(docker_host: str | None = None) -> Engine:
    """Connects and checks the engine; SandboxUnavailable (one line) when it cannot be used."""
    params, address, source = settings(docker_host)
    if address.startswith("ssh://") and paramiko is None:
        raise SandboxUnavailable(f"the Docker host {address} is reached over ssh, which needs paramiko: "
                                 "pip install 'agentic-vision[ssh]'")
    probe = _client(address, version=MIN_API, timeout=PROBE_TIMEOUT, **params)
    try:
        version = probe.api.version(api_version=False)  # unversioned: answers whatever the engine speaks
    except Exception as exc:  # requests/urllib3/ssl/docker errors: all classified below
        raise explain(exc, address) from None
    finally:
        probe.close()
    api = str(version.get("ApiVersion", "0"))
    if docker.utils.version_lt(api, MIN_API):
        raise SandboxUnavailable(
            f"the Docker engine at {address} is too old (Engine {version.get('Version', '?')}, API {api}): "
            f"the Docker sandbox needs API {MIN_API} or newer (Docker 20.10+); upgrade the engine"
        )
    client = _client(address, version=api, timeout=API_TIMEOUT, max_pool_size=32, **params)
    return Engine(client, address, source, version)


def _client(address: str, **kwargs) -> docker.DockerClient:
    """A client, or SandboxUnavailable within PROBE_TIMEOUT.

    For ssh:// the SDK logs in (paramiko) while it makes the client, with no
    timeout of its own (a host that drops packets holds it for minutes), so
    that is done in a thread given PROBE_TIMEOUT; a login that ends later is
    closed by the thread itself.
    """
    done: dict = {}
    lock = threading.Lock()

    def make() -> None:
        try:
            client = docker.DockerClient(**kwargs)
        except Exception as exc:  # docker, paramiko and socket errors: classified below
            client, done["error"] = None, exc
        with lock:
            if done.get("abandoned") and client is not None:
                client.close()
            done["client"] = client

    if not address.startswith("ssh://"):
        make()
    else:
        login = threading.Thread(target=make, name="docker-ssh-login", daemon=True)
        login.start()
        login.join(PROBE_TIMEOUT)
        with lock:
            if "client" not in done:
                done["abandoned"] = True
                raise SandboxUnavailable(f"the ssh server for the Docker host {address} did not answer within {PROBE_TIMEOUT:g} s")
    if done.get("error") is None:
        return done["client"]
    exc = done["error"]
    if isinstance(exc, docker.errors.DockerException):
        raise SandboxUnavailable(f"the Docker host {address!r} is not usable: {_one_line(exc)}") from None
    raise explain(exc, address) from None


def _causes(exc: BaseException):
    """exc and everything it wraps (requests -> urllib3 -> OSError/ssl)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__] + [a for a in e.args if isinstance(a, BaseException)]
        if isinstance(e, urllib3.exceptions.MaxRetryError):
            todo.append(e.reason)
        if paramiko is not None and isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
            todo += list(e.errors.values())  # per address tried: ConnectionRefusedError...


def explain(exc: BaseException, address: str) -> SandboxUnavailable:
    """What went wrong reaching the engine at address, as one line that says what to do."""
    causes = list(_causes(exc))
    if address.startswith("ssh://") and paramiko is not None:
        problem = _explain_ssh(causes, address)
        if problem is not None:
            return problem
    for e in causes:
        if isinstance(e, ssl.SSLError):
            return SandboxUnavailable(
                f"TLS with the Docker engine at {address} failed ({e.reason or _one_line(e)}): check DOCKER_TLS_VERIFY "
                "and the ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH"
            )
    for e in causes:
        if isinstance(e, PermissionError):
            return SandboxUnavailable(
                f"permission denied on the Docker socket ({address}): add yourself to the docker group "
                "('sudo usermod -aG docker $USER', then log in again) or use sudo"
            )
    for e in causes:
        if isinstance(e, (ConnectionRefusedError, FileNotFoundError)):
            return SandboxUnavailable(
                f"no Docker engine answers at {address} ({'no such socket' if isinstance(e, FileNotFoundError) else 'connection refused'}): "
                f"{start_hint(address)}, or set DOCKER_HOST / --docker-host to a running engine"
            )
    for e in causes:
        if isinstance(e, (socket.timeout, requests.exceptions.Timeout, urllib3.exceptions.TimeoutError)):
            return SandboxUnavailable(f"the Docker engine at {address} did not answer within {PROBE_TIMEOUT:g} s")
    for e in causes:
        if isinstance(e, socket.gaierror):
            return SandboxUnavailable(f"the Docker host in {address} is not known ({e.strerror}): check DOCKER_HOST / --docker-host")
    return SandboxUnavailable(f"cannot use the Docker engine at {address}: {_one_line(exc)}")


def _explain_ssh(causes: list, address: str) -> SandboxUnavailable | None:
    url = urlparse(address)
    host, port = url.hostname or "?", url.port or 22
    login = f"ssh -p {port} {url.username + '@' if url.username else ''}{host}"
    for e in causes:
        if isinstance(e, paramiko.AuthenticationException):
            return SandboxUnavailable(
                f"the ssh server at {host}:{port} refused the login ({_one_line(e)}): put your public key in that user's "
                "authorized_keys, or name the key with IdentityFile in ~/.ssh/config (keys in ~/.ssh and ssh-agent are tried)"
            )
        if isinstance(e, paramiko.BadHostKeyException):
            return SandboxUnavailable(
                f"the ssh host key of {host}:{port} is not the one in ~/.ssh/known_hosts: if the host really changed its "
                f"key, remove the old line (ssh-keygen -R) and check the new one with '{login}'"
            )
        if isinstance(e, paramiko.SSHException) and "not found in known_hosts" in str(e):
            # The SDK refuses unknown hosts (paramiko's RejectPolicy); so do we.
            return SandboxUnavailable(
                f"the ssh host key of {host}:{port} is not in ~/.ssh/known_hosts and unknown hosts are refused: "
                f"connect once with '{login}' to check and accept it"
            )
        if isinstance(e, ConnectionRefusedError):
            return SandboxUnavailable(
                f"no ssh server answers at {host}:{port} (connection refused): check the host and port in {address}"
            )
        if isinstance(e, paramiko.ChannelException):
            # Every API connection and every sandbox session's stream is a channel of
            # the one ssh connection; OpenSSH allows MaxSessions (10) of them.
            return SandboxUnavailable(
                f"the ssh server at {host}:{port} opened no further channel ({e.text}): each sandbox session holds one "
                "and the API a few more; raise MaxSessions (OpenSSH's default is 10) in that server's sshd_config"
            )
        if isinstance(e, paramiko.SSHException):
            return SandboxUnavailable(f"ssh to {host}:{port} failed: {_one_line(e)}")
        if isinstance(e, (http.client.RemoteDisconnected, urllib3.exceptions.ProtocolError)):
            # Logged in, but what the SDK runs there for each connection ended at once.
            return SandboxUnavailable(
                f"the ssh login to {host}:{port} worked but no Docker engine answered through it: 'docker system "
                "dial-stdio' failed there; that machine needs the docker CLI on that user's PATH and a running engine"
            )
    return None


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


# -- the sandbox image ------------------------------------------------------------------------


def source_hash() -> str | None:
    """The hash the build puts in the image's label, of this checkout's or this
    installed package's build files; None when it has none."""
    files = image_sources()
    return hash_of(files) if files is not None else None


def inspect_image(engine: Engine, image: str) -> dict:
    """The image's metadata; SandboxUnavailable when it is missing or out of date."""
    try:
        info = engine.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        raise SandboxUnavailable(f"the sandbox image {image} is not built on the engine at {engine.address}: {BUILD_HINT}") from None
    except docker.errors.APIError as exc:
        raise SandboxUnavailable(f"the engine at {engine.address} cannot inspect the image {image}: {_one_line(exc)}") from None
    except Exception as exc:
        raise explain(exc, engine.address) from None
    # Only images built by our build carry a real hash; a hand-built ("unknown")
    # or foreign image is taken as it is.
    have = ((info.get("Config") or {}).get("Labels") or {}).get(HASH_LABEL, "unknown")
    want = source_hash()
    if want and have not in ("", "unknown") and have != want:
        raise SandboxUnavailable(f"the sandbox image {image} is out of date with this version's sandbox files: {BUILD_HINT}")
    return info
