"""A TCP listener on loopback that forwards every connection to a unix socket.

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

import pytest

DOCKER_SOCKET = "/var/run/docker.sock"


class Forwarder:
    def __init__(self, unix_path: str = DOCKER_SOCKET, rewrite: tuple[bytes, bytes] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.unix_path = unix_path
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
            engine = socket.socket(socket.AF_UNIX)
            try:
                if self.tls is not None:
                    client.settimeout(10)
                    client = self.tls.wrap_socket(client, server_side=True)
                    client.settimeout(None)
                engine.connect(self.unix_path)
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
    """A Forwarder (``rewrite=``, ``tls=``) to the local engine's socket, closed afterwards;
    the test is skipped where the engine listens elsewhere."""
    if not os.path.exists(DOCKER_SOCKET):
        pytest.skip(f"the engine does not listen on {DOCKER_SOCKET}")
    fwd = Forwarder(DOCKER_SOCKET, **options)
    try:
        yield fwd
    finally:
        fwd.close()
