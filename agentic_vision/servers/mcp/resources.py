"""Read-only resources: the limits a client works within, the libraries it can import."""

from __future__ import annotations

import json

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from ...errors import AgenticVisionError
from ...sandboxing.executors import get_executor
from ...sandboxing.libraries import available_libraries
from ...sandboxing.runtime_files import library_specs
from .tools import ServerState


def register_resources(app: MCPServer, state: ServerState) -> None:
    cfg, registry = state.config, state.registry

    @app.resource("agentic-vision://limits", name="limits", mime_type="application/json",
                  description="Time, memory, process, file, image and session limits of this server's sandbox.")
    async def limits() -> str:
        try:
            executor = await anyio.to_thread.run_sync(
                lambda: get_executor(cfg.sandbox, pool_size=0, docker_host=cfg.docker_host, libraries=cfg.libraries))
        except AgenticVisionError as exc:
            raise ResourceError(str(exc)) from None
        return json.dumps(cfg.limits(executor), indent=2)

    @app.resource("agentic-vision://libraries", name="libraries", mime_type="application/json",
                  description="The Python libraries of the hosted code-execution environment and which of them "
                              "import in this sandbox (the first read may take seconds; it is cached).")
    async def libraries() -> str:
        def probe() -> tuple[list[str], tuple]:
            registry.reserve()
            try:
                with registry.open_sandbox() as sandbox:
                    return available_libraries(sandbox), sandbox.executor.extras
            finally:
                registry.release()

        try:
            names, extras = await anyio.to_thread.run_sync(probe)
        except AgenticVisionError as exc:
            raise ResourceError(str(exc)) from None
        available = set(names)
        # The extra libraries this server was started with (--libraries) follow the hosted list.
        return json.dumps([
            {"name": spec["name"], "import": spec["import"], "hosted": spec["hosted"],
             "available": spec["name"] in available, **({"version": spec["version"]} if "version" in spec else {})}
            for spec in [*library_specs(), *extras]
        ], indent=2)
