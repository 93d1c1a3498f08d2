"""A TCP listener on loopback that forwards every connection to the local engine (its unix socket,
or the plain TCP address DOCKER_HOST names, read as the Docker SDK reads it).

Lets tests reach the local Docker engine as ``DOCKER_HOST=tcp://127.0.0.1:PORT``
and count what really went over TCP.  ``rewrite`` replaces bytes in what the
engine answers (same length, so HTTP framing stays valid).  ``tls``: a
server-side SSL context, so that clients speak TLS to the forwarder (an engine
with DOCKER_TLS_VERIFY).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from contextlib import contextmanager

from urllib.parse import urlsplit

from conftest import require


def engine_target() -> str | tuple[str, int]:
    """Where the Docker SDK finds the engine from this environment (DOCKER_HOST, else its default
    socket): a unix socket path or a (host, port) of plain TCP.  Another kind (ssh://, TLS) cannot be
    forwarded here: require() skips the test, or fails it in strict mode."""
    import docker.utils

    url = docker.utils.parse_host(os.environ.get("DOCKER_HOST"), tls=bool(os.environ.get("DOCKER_TLS_VERIFY")))
    parts = urlsplit(url)
    if parts.scheme == "http+unix":
        require(os.path.exists(parts.path), f"the engine's socket {parts.path} (set DOCKER_HOST or start the engine)")
        return parts.path
    require(parts.scheme == "http", f"an engine on a unix socket or plain TCP (DOCKER_HOST is {url})")
    return parts.hostname, parts.port


def engine_socket() -> str:
    """The engine's unix socket (tests of socket permissions need one)."""
    target = engine_target()
    require(isinstance(target, str), "an engine on a unix socket")
    return target


class Forwarder:
    def __init__(self, target: str | tuple[str, int], rewrite: tuple[bytes, bytes] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.target = target
        self.tls = tls
        self.rewrite = rewrite
        self.connections = 0
        self.bytes_up = 0  # client -> engine
        self.bytes_down = 0  # engine -> client
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX if isinstance(self.target, str) else socket.AF_INET)
            try:
                if self.tls is not None:
                    client.settimeout(10)
                    client = self.tls.wrap_socket(client, server_side=True)
                    client.settimeout(None)
                engine.connect(self.target)
            except OSError:  # ssl.SSLError too: a failed handshake
                client.close()
                engine.close()
                continue
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, engine, "bytes_up", None), daemon=True).start()
            threading.Thread(target=self._pump, args=(engine, client, "bytes_down", self.rewrite), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counter: str, rewrite) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if rewrite:
                    data = data.replace(*rewrite)
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()


def closed_port() -> int:
    """A loopback port that nothing listens on (bound once, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


@contextmanager
def engine_forwarder(**options):
    """A Forwarder (``rewrite=``, ``tls=``) to the engine of this environment, closed afterwards."""
    fwd = Forwarder(engine_target(), **options)
    try:
        yield fwd
    finally:
        fwd.close()
