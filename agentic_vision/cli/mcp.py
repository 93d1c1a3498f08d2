"""`agentic-vision mcp`: serve the sandbox and the loop to MCP clients."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from .docker import docker_host_option, sandbox_option
from .libraries import libraries_option
from .exits import EXIT_USAGE, fail


@click.command("mcp")
@click.option("--transport", type=click.Choice(["stdio", "streamable-http"]), default="stdio", show_default=True,
              help="stdio for a client that starts the server; streamable-http to listen on --host.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address for streamable-http; anything but loopback needs --auth-token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port for streamable-http (0: any free one, printed on stderr).")
@sandbox_option("Where the code runs.")
@docker_host_option
@click.option("--auth-token", envvar="AGENTIC_VISION_AUTH_TOKEN", show_envvar=True, default=None,
              help="streamable-http: the bearer token every request must carry (Authorization: Bearer TOKEN); "
                   "required off loopback.")
@click.option("--allow-dir", "allow_dirs", multiple=True, type=click.Path(file_okay=False),
              help="A directory whose files clients may copy into the sandbox (repeatable; default: the current one).")
@click.option("--allow-hardlinks", is_flag=True,
              help="Also read files under --allow-dir that have more than one hard link (one may lead outside).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds per run, and the most a call may ask for.")
@click.option("--max-sessions", type=click.IntRange(min=1), default=4, show_default=True,
              help="Sandboxes open at once (ask's included).")
@click.option("--idle-timeout", type=click.FloatRange(min=1), default=900.0, show_default=True,
              help="Seconds after which an unused HTTP session is closed.")
@click.option("--image-max-side", type=click.IntRange(min=64), default=1536, show_default=True,
              help="Images come back downscaled to this longest side.")
@click.option("--max-image-bytes", type=click.IntRange(min=1024), default=8 * 1024 * 1024, show_default=True,
              help="Bytes of images in one result, all together.")
@click.option("--model", default="gemini-3-flash-preview", show_default=True,
              envvar="AGENTIC_VISION_MODEL", show_envvar=True,
              help="Model for the ask tool: gemini-…, openai:NAME or ollama:NAME.")
@click.option("--max-steps", type=click.IntRange(min=1), default=12, show_default=True, help="The most steps an ask may take.")
@click.option("--trace-dir", type=click.Path(file_okay=False), default=None, help="Write an HTML trace of every ask here.")
@click.option("--no-guard", is_flag=True, help="Skip the RestrictedPython first-pass guard (the OS sandbox still holds).")
@libraries_option
def mcp_command(transport, host, port, sandbox, docker_host, auth_token, allow_dirs, allow_hardlinks, timeout,
                max_sessions, idle_timeout, image_max_side, max_image_bytes, model, max_steps, trace_dir,
                no_guard, libraries) -> None:
    """Serve run_python, ask and their friends to MCP clients (stdio by default)."""
    try:
        import mcp  # noqa: F401  (the optional SDK)
    except ImportError:
        fail("the MCP server needs the mcp extra: pip install 'agentic-vision[mcp]'", EXIT_USAGE)
    from ..sandboxing.executors import check_docker_host
    from ..servers.mcp import ServerConfig, serve
    from ..servers.mcp.auth import check_auth

    check_docker_host(sandbox, docker_host, cli=True)
    if transport == "stdio":
        if click.get_current_context().get_parameter_source("auth_token") == ParameterSource.COMMANDLINE:
            fail("--auth-token is for --transport streamable-http; a stdio server talks only to the client "
                 "that started it", EXIT_USAGE)
        auth_token = None
    else:
        check_auth(host, auth_token)
    for d in allow_dirs:
        if not Path(d).is_dir():
            fail(f"--allow-dir {d}: not a directory", EXIT_USAGE)
    config = ServerConfig(
        sandbox=sandbox, docker_host=docker_host,
        allow_dirs=tuple(Path(d).resolve() for d in allow_dirs) or (Path.cwd(),),
        timeout=timeout, max_sessions=max_sessions, idle_timeout=idle_timeout, image_max_side=image_max_side,
        max_result_image_bytes=max_image_bytes, model=model, max_steps=max_steps,
        trace_dir=Path(trace_dir).resolve() if trace_dir else None, guard=not no_guard, libraries=libraries,
        auth_token=auth_token, allow_hardlinks=allow_hardlinks,
    )
    broad = [d for d in config.allow_dirs if d in (Path("/"), Path.home())]
    if broad:  # clients often start servers in / or the home directory
        click.echo(f"agentic-vision mcp: clients may copy any file under {broad[0]} into the sandbox; "
                   "narrow it with --allow-dir", err=True)
    if transport == "stdio" and sys.stdin.isatty():
        click.echo("agentic-vision mcp: speaking MCP on stdin/stdout; an MCP client starts this command "
                   "(or use --transport streamable-http)", err=True)
    serve(config, transport, host, port)
