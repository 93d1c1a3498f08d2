"""Running the gateway on uvicorn: in the foreground (the CLI) or in a background thread."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time

import uvicorn

from ...errors import InputError
from ..binding import is_loopback
from ..stopping import exit_on_sigterm
from . import request_log
from .app import create_app
from .config import GatewayConfig



def check_bind(host: str, config: GatewayConfig) -> None:
    """Anything but loopback is reachable by others: only with --auth-key or --client-keys."""
    if not is_loopback(host) and not config.authenticates:
        raise InputError(f"refusing to listen on {host} without --auth-key or --client-keys: anyone who can reach it could run "
                         "code in your sandboxes and spend your API key (use --auth-key KEY, or 127.0.0.1)")


def _uvicorn_config(config: GatewayConfig, host: str, port: int, log_level: str,
                    log_format: str = "text") -> uvicorn.Config:
    # One worker process: the sandboxes' warm pools and uploaded files live in it.  The app
    # logs each request itself (request_log.py), so uvicorn's access log is off; as JSON,
    # uvicorn's own lines go through the root logger's JSON handler.
    return uvicorn.Config(create_app(config), host=host, port=port, log_level=log_level, access_log=False,
                          timeout_graceful_shutdown=5, lifespan="on",
                          **({"log_config": None} if log_format == "json" else {}))


def listen_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that port 0 has a number to print and a
    taken port is one line, before anything is served."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise InputError(f"cannot listen on {host} port {port}: {exc.strerror or exc} "
                         "(choose another --port, or --port 0 for any free one)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: GatewayConfig, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info",
          sock: socket.socket | None = None, log_format: str = "text") -> None:
    """Serves until SIGINT/SIGTERM; on ``sock`` when given (see ``listen_socket``).  A line per
    request on stderr at ``info`` and ``debug``, as text or JSON (``log_format``)."""
    check_bind(host, config)
    exit_on_sigterm()
    sock = sock or listen_socket(host, port)
    level = logging.getLevelNamesMapping()[log_level.upper()]
    request_log.configure(log_format, sys.stderr, level)
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(request_log.JsonFormatter())
        logging.getLogger().handlers[:] = [handler]
        logging.getLogger("uvicorn").setLevel(level)
    uvicorn.Server(_uvicorn_config(config, host, sock.getsockname()[1], log_level, log_format)).run(sockets=[sock])


class BackgroundGateway:
    """The gateway on a free local port in a thread: ``with BackgroundGateway(config) as gw: gw.url``."""

    def __init__(self, config: GatewayConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        check_bind(host, config)
        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(_uvicorn_config(config, host, port, "warning"))
        self.app = self.server.config.app
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "BackgroundGateway":
        self._thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
