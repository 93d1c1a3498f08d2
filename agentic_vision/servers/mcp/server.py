"""Wiring: the MCP server over stdio or streamable HTTP on loopback.

Over stdio the server serves one client and ends with it, closing every
sandbox.  Over HTTP it runs code for whoever connects: it binds a loopback
address, or any other only with --auth-token, and closes sessions nobody
used for the idle timeout.
"""

from __future__ import annotations

import socket
import sys
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio
import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from ...errors import InputError
from ...sandboxing.executors import describe_sandbox, get_executor
from ..stopping import exit_on_sigterm
from .access import FileAccess
from .auth import SDK_LOOPBACK, BearerAuth, check_auth, is_loopback
from .config import ServerConfig
from .resources import register_resources
from .sessions import IdleReaper, SessionRegistry
from .tools import ServerState, register_tools

TRANSPORTS = ("stdio", "streamable-http")

INSTRUCTIONS = """\
Runs Python on images in a sandbox (no network, limited time and memory), with the
hosted code-execution libraries (numpy, PIL, OpenCV, matplotlib, scikit-image, pandas...).
run_python keeps variables and files between calls in a session, like a notebook; pass
host paths in `files` (or use add_files / add_image) and open them by name. Every image
the code shows comes back. ask runs a whole vision-model loop that writes such code itself.
"""


def _version() -> str:
    try:
        return version("agentic-vision")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


def build_server(config: ServerConfig, transport: str = "stdio") -> MCPServer:
    if transport not in TRANSPORTS:
        raise InputError(f"unknown transport {transport!r}: choose one of {', '.join(TRANSPORTS)}")
    registry = SessionRegistry(config.sandbox, config.timeout, config.max_sessions, guard=config.guard,
                               docker_host=config.docker_host, libraries=config.libraries)
    state = ServerState(config, FileAccess(config.allow_dirs, allow_hardlinks=config.allow_hardlinks), registry,
                        transport)

    @asynccontextmanager
    async def lifespan(app: MCPServer):
        reaper = IdleReaper(registry, config.idle_timeout)
        if transport != "stdio":  # over stdio the client's leaving ends everything
            reaper.start()
        try:
            yield {}
        finally:
            reaper.stop()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(registry.close_all)

    app = MCPServer("agentic-vision", title="Agentic Vision sandbox", instructions=INSTRUCTIONS,
                    version=_version(), lifespan=lifespan, log_level="WARNING")
    register_tools(app, state)
    register_resources(app, state)
    return app


def serve(config: ServerConfig, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves until the client leaves (stdio) or the process is interrupted (HTTP)."""
    if transport != "stdio":
        check_auth(host, config.auth_token)
    # A missing sandbox (or an engine that does not answer) is one line now, not an error per call.
    executor = get_executor(config.sandbox, pool_size=0, docker_host=config.docker_host, libraries=config.libraries)
    app = build_server(config, transport)
    if transport == "stdio":
        anyio.run(app.run_stdio_async)
        return
    sock = _bind(host, port)
    starlette_app = app.streamable_http_app(host=host, session_idle_timeout=config.idle_timeout,
                                            transport_security=_transport_security(host))
    asgi_app = BearerAuth(starlette_app, config.auth_token) if config.auth_token else starlette_app
    shown = f"[{host}]" if ":" in host else host
    engine = executor.engine.address if executor.kind == "docker" else None
    print(f"agentic-vision mcp: serving on http://{shown}:{sock.getsockname()[1]}/mcp "
          f"(sandbox {describe_sandbox(config.sandbox, executor.kind, engine)}"
          f"{'; bearer token required' if config.auth_token else ''})", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(asgi_app, log_level="warning", lifespan="on"))
    exit_on_sigterm()
    anyio.run(server.serve, [sock])


def _transport_security(host: str) -> TransportSecuritySettings | None:
    """Host and Origin checks against DNS rebinding on every loopback address (the SDK's own cover three
    names). Beyond loopback --auth-token guards the server: a rebound page cannot add the header."""
    if host in SDK_LOOPBACK or not is_loopback(host):
        return None
    shown = f"[{host}]" if ":" in host else host
    return TransportSecuritySettings(allowed_hosts=[f"{shown}:*"], allowed_origins=[f"http://{shown}:*"])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None
    sock.listen(128)
    return sock
