"""`agentic-vision mcp`: the sandbox and the loop as a Model Context Protocol server.

Modules: ``config`` (what the server is started with), ``access`` (which
host files a client may hand over), ``sessions`` (whose sandbox is whose,
limits, cancellation), ``results`` (MCP content), ``tools`` and
``resources`` (what clients call and read), ``server`` (the wiring and the
transports).
"""

from .config import ServerConfig
from .server import TRANSPORTS, build_server, serve

__all__ = ["ServerConfig", "TRANSPORTS", "build_server", "serve"]
